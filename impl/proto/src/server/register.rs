//! Dynamic client registration (RFC 7591): the endpoint, request validation and the registered
//! client.

use serde::{Deserialize, Serialize};

use super::{AuthorizationServer, Limits};
use crate::entropy::{Entropy, mint};
use crate::error::Rejection;
use crate::time::UnixTime;
use crate::types::{ClientId, ScopeSet, SecretDigest};
use crate::uri::RedirectUri;

/// Longest registration request body.
pub const REGISTRATION_LEN_MAX: usize = 16 * 1024;
/// Longest free-text or URL metadata value.
const VALUE_LEN_MAX: usize = 512;

/// Token endpoint client authentication methods we support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenAuthMethod {
    /// Public client: identifies with `client_id` only (PKCE protects the code).
    None,
    /// `client_secret` in HTTP Basic.
    ClientSecretBasic,
    /// `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    /// All methods, as advertised.
    pub const ALL: [Self; 3] = [Self::None, Self::ClientSecretBasic, Self::ClientSecretPost];

    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    /// Parse a wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Client metadata as sent in a registration request (RFC 7591 §2). Unknown members are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Token endpoint auth method (default `client_secret_basic`, RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types (default `["authorization_code"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// Response types (default `["code"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Software identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// `native` or `web` (MCP 2026-07-28, OpenID Connect Dynamic Registration §2): `native`
    /// takes loopback http redirect URIs only, `web` https ones on a non-loopback host.
    /// Absent: no such rule, and none is filled in (clients of 2025-06-18 never send it, and
    /// the OpenID default `web` would refuse their loopback redirect URIs). Echoed as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
}

/// A registered client (what the server keeps).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegisteredClient {
    /// Redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Auth method.
    pub auth_method: TokenAuthMethod,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Response types.
    pub response_types: Vec<String>,
    /// Name.
    pub client_name: Option<String>,
    /// The rest of the metadata, echoed in the response.
    pub metadata: ClientMetadata,
    /// The digest of a confidential client's secret (the secret itself is only in the
    /// registration response).
    pub secret: Option<SecretDigest>,
    /// Registration time.
    pub issued_at: UnixTime,
    /// Whether the client ever redeemed a code. One that did not within
    /// [`Lifetimes::unused_client`](super::Lifetimes::unused_client) may be forgotten when the
    /// client table is full.
    pub completed: bool,
}

/// The registration response (RFC 7591 §3.2.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegistrationResponse {
    /// The issued client id.
    pub client_id: ClientId,
    /// The secret of a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<u64>,
    /// `0`: the secret does not expire. Present whenever a secret is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// Everything registered, defaults included.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

fn bounded(v: &Option<String>) -> Result<(), Rejection> {
    match v {
        Some(s) if s.len() > VALUE_LEN_MAX || s.chars().any(char::is_control) => {
            Err(Rejection::ClientMetadataInvalid)
        }
        _ => Ok(()),
    }
}

/// Do the redirect URIs fit `application_type`? `native`: every one loopback http (this
/// server accepts no private-use URI schemes at all, [DCR-10](crate::requirements#DCR-10));
/// `web`: every one https on a host that is not loopback; absent: any (today's rules).
// spec: DCR-14
fn application_type_fits(
    application_type: Option<&str>,
    redirect_uris: &[RedirectUri],
) -> Result<(), Rejection> {
    let fits = |r: &RedirectUri| match application_type {
        Some("native") => r.is_loopback(),
        Some(_) => crate::uri::parse_uri(r.as_str()).is_ok_and(|p| {
            p.scheme.eq_ignore_ascii_case("https")
                && crate::address::host_class(p.host) != crate::address::HostClass::Loopback
        }),
        None => true,
    };
    match application_type {
        None | Some("native" | "web") => {}
        Some(_) => return Err(Rejection::ApplicationTypeUnknown),
    }
    if redirect_uris.iter().all(fits) {
        Ok(())
    } else {
        Err(Rejection::ApplicationTypeMismatch)
    }
}

impl ClientMetadata {
    /// Apply policy: redirect URIs https or loopback http (no fragment, no `javascript:` and
    /// the like), bounded counts and sizes, supported auth methods, grant and response types.
    /// Defaults are filled in, so the response echoes what was really registered.
    // spec: DCR-5, DCR-7, DCR-8, DCR-9, DCR-10, DCR-14, SEC-12
    pub fn validate(mut self, limits: &Limits) -> Result<RegisteredClient, Rejection> {
        if self.redirect_uris.is_empty() {
            return Err(Rejection::RedirectUrisMissing);
        }
        if self.redirect_uris.len() > limits.redirect_uris {
            return Err(Rejection::RedirectUriInvalid);
        }
        let redirect_uris = self
            .redirect_uris
            .iter()
            .map(|r| RedirectUri::parse(r).map_err(|_| Rejection::RedirectUriInvalid))
            .collect::<Result<Vec<_>, _>>()?;
        application_type_fits(self.application_type.as_deref(), &redirect_uris)?;
        let method_name = self
            .token_endpoint_auth_method
            .get_or_insert_with(|| "client_secret_basic".into());
        let auth_method =
            TokenAuthMethod::from_name(method_name).ok_or(Rejection::AuthMethodUnsupported)?;
        let grant_types = self
            .grant_types
            .get_or_insert_with(|| vec!["authorization_code".into()])
            .clone();
        if grant_types.is_empty() || grant_types.len() > 4 {
            return Err(Rejection::GrantTypeUnsupported);
        }
        if grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(Rejection::GrantTypeUnsupported);
        }
        let response_types = self
            .response_types
            .get_or_insert_with(|| vec!["code".into()])
            .clone();
        if response_types.iter().any(|r| r != "code") || response_types.len() > 4 {
            return Err(Rejection::ResponseTypeUnsupported);
        }
        if grant_types.iter().any(|g| g == "authorization_code")
            != response_types.iter().any(|r| r == "code")
        {
            return Err(Rejection::ResponseTypeUnsupported);
        }
        for v in [
            &self.client_name,
            &self.client_uri,
            &self.logo_uri,
            &self.software_id,
            &self.software_version,
            &self.application_type,
        ] {
            bounded(v)?;
        }
        for uri in [&self.client_uri, &self.logo_uri].into_iter().flatten() {
            crate::uri::parse_uri(uri).map_err(|_| Rejection::ClientMetadataInvalid)?;
        }
        if let Some(scope) = &self.scope {
            ScopeSet::parse(scope).map_err(|_| Rejection::ClientMetadataInvalid)?;
        }
        Ok(RegisteredClient {
            redirect_uris,
            auth_method,
            grant_types,
            response_types,
            client_name: self.client_name.clone(),
            metadata: self,
            secret: None,
            issued_at: UnixTime::default(),
            completed: false,
        })
    }
}

impl RegisteredClient {
    /// The registration response for this client.
    pub fn response(
        &self,
        client_id: &ClientId,
        secret: Option<&str>,
        now: UnixTime,
    ) -> RegistrationResponse {
        RegistrationResponse {
            client_id: client_id.clone(),
            client_secret: secret.map(str::to_owned),
            client_id_issued_at: Some(now.as_secs()),
            client_secret_expires_at: secret.map(|_| 0),
            metadata: self.metadata.clone(),
        }
    }
}

impl AuthorizationServer {
    /// Dynamic client registration (RFC 7591).
    // spec: DCR-1, DCR-6, DCR-7, DCR-10
    pub fn register(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        metadata: ClientMetadata,
    ) -> Result<RegistrationResponse, Rejection> {
        if self.clients.len() >= self.config.limits.clients {
            // Clients that never completed a flow are forgotten after a while (SEC-17).
            let unused = self.config.lifetimes.unused_client;
            let mut forgotten = Vec::new();
            self.clients.retain(|id, c| {
                let keep = c.completed || now < c.issued_at.plus(unused);
                if !keep {
                    forgotten.push(id.clone());
                }
                keep
            });
            for id in forgotten {
                self.touch(super::RecordKey::Client(id));
            }
        }
        if self.clients.len() >= self.config.limits.clients {
            return Err(Rejection::Full);
        }
        let client = metadata.validate(&self.config.limits)?;
        let client_id = ClientId(mint(entropy));
        let secret = (client.auth_method != TokenAuthMethod::None).then(|| mint(entropy));
        let response = client.response(&client_id, secret.as_deref(), now);
        let registered = RegisteredClient {
            secret: secret.as_deref().map(SecretDigest::of),
            issued_at: now,
            ..client
        };
        self.clients
            .insert(client_id.clone(), std::sync::Arc::new(registered));
        self.touch(super::RecordKey::Client(client_id));
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(application_type: Option<&str>, redirect: &str) -> Result<RegisteredClient, Rejection> {
        ClientMetadata {
            redirect_uris: vec![redirect.into()],
            token_endpoint_auth_method: Some("none".into()),
            application_type: application_type.map(str::to_owned),
            ..ClientMetadata::default()
        }
        .validate(&Limits::default())
    }

    // spec: DCR-14
    #[test]
    fn application_type_decides_the_kind_of_redirect_uri() {
        let ok = |t, r| assert!(with(t, r).is_ok(), "{t:?} {r}");
        let mismatch = |t, r| {
            assert_eq!(
                with(t, r).err(),
                Some(Rejection::ApplicationTypeMismatch),
                "{t:?} {r}"
            );
        };
        ok(Some("native"), "http://127.0.0.1/cb");
        ok(Some("native"), "http://localhost:3000/cb");
        ok(Some("native"), "http://[::1]/cb");
        mismatch(Some("native"), "https://app.example.com/cb");
        ok(Some("web"), "https://app.example.com/cb");
        mismatch(Some("web"), "http://127.0.0.1/cb");
        mismatch(Some("web"), "https://localhost/cb");
        mismatch(Some("web"), "https://127.0.0.1/cb");
        // Absent: clients of 2025-06-18 never send it; nothing changes for them.
        ok(None, "http://127.0.0.1/cb");
        ok(None, "https://app.example.com/cb");
        for bad in ["", "Native", "browser", "service"] {
            assert_eq!(
                with(Some(bad), "http://127.0.0.1/cb").err(),
                Some(Rejection::ApplicationTypeUnknown),
                "{bad}"
            );
        }
        let wire = |r: Rejection| (r.code().as_str(), r.code().status());
        assert_eq!(
            wire(Rejection::ApplicationTypeUnknown),
            ("invalid_client_metadata", 400)
        );
        assert_eq!(
            wire(Rejection::ApplicationTypeMismatch),
            ("invalid_redirect_uri", 400)
        );
        // Echoed as sent.
        let client = with(Some("native"), "http://127.0.0.1/cb").expect("native");
        let response = client.response(&ClientId("c".into()), None, UnixTime::default());
        assert_eq!(
            response.metadata.application_type.as_deref(),
            Some("native")
        );
    }
}
