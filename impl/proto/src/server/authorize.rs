//! The authorization endpoint and consent: a verified request becomes a pending
//! authorization bound to the browser session; the user's approval mints a code bound to
//! everything the request named.

use subtle::ConstantTimeEq;

use super::{
    Accounts, Answer, AuthorizationServer, Browser, CodeState, LoginPrompt, RecordKey,
    RegisteredClient, SessionKey,
};
use crate::entropy::{Entropy, mint};
use crate::error::Rejection;
use crate::form::Params;
use crate::mutations::mutated;
use crate::pkce::CodeChallenge;
use crate::time::UnixTime;
use crate::types::{ClientId, ScopeSet, SecretDigest, Subject};
use crate::uri::{RedirectUri, ResourceUri};

/// What a code is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CodeBinding {
    /// The client.
    pub client_id: ClientId,
    /// The redirect URI of the authorization request (as sent).
    pub redirect_uri: String,
    /// Whether the authorization request carried `redirect_uri` (then the token request must too).
    pub redirect_uri_sent: bool,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// The resource the user consented to.
    pub resource: ResourceUri,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The user.
    pub subject: Subject,
    /// Expiry.
    pub expires_at: UnixTime,
}

/// A consent waiting for the user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentPrompt {
    /// Identifies the pending authorization in the consent form.
    pub id: String,
    /// CSRF token the form must echo.
    pub csrf: String,
    /// The client.
    pub client_id: ClientId,
    /// Its registered name, if any.
    pub client_name: Option<String>,
    /// Where the code will go.
    pub redirect_uri: String,
    /// The host part of the redirect URI, shown prominently.
    pub redirect_host: String,
    /// For a client ID URL (a Client ID Metadata Document): the host of that URL, which is
    /// who vouches for the client's name and redirect URIs ([CIMD-6](crate::requirements#CIMD-6)).
    pub client_document_host: Option<String>,
    /// For a client ID URL: every redirect URI of its document is on a loopback host, so the
    /// name cannot be trusted to be that application's ([CIMD-7](crate::requirements#CIMD-7)).
    pub localhost_redirects_only: bool,
    /// Scopes requested.
    pub scopes: ScopeSet,
    /// The resource the token will be for.
    pub resource: ResourceUri,
    /// The display name of the logged-in user the page is for.
    pub user: Option<String>,
    /// Whether the page offers "not you? sign out" (accounts with login).
    pub can_logout: bool,
}

/// An authorization waiting for the user, bound to the browser session that started it and,
/// once known, the user ([AZ-29](crate::requirements#AZ-29)). Opaque: a durable record
/// ([`Record::Pending`](super::Record::Pending)) whose parts only the server reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub(super) prompt: ConsentPrompt,
    pub(super) binding: CodeBinding,
    pub(super) state: Option<String>,
    pub(super) expires_at: UnixTime,
    pub(super) session: SessionKey,
    pub(super) subject: Option<Subject>,
    pub(super) peer: Option<std::net::IpAddr>,
}

/// An error the user is told about, with a link back to the client they may follow: the
/// request came from a verified client and redirect URI, but no user has been involved yet,
/// so the server does not redirect on its own ([AZ-7](crate::requirements#AZ-7), [AZ-8](crate::requirements#AZ-8), [AZ-9](crate::requirements#AZ-9)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Inform {
    /// The client's registered name, if any.
    pub client_name: Option<String>,
    /// The client id.
    pub client_id: ClientId,
    /// The host of the redirect URI.
    pub redirect_host: String,
    /// The error response the client would get.
    pub redirect: AuthorizationRedirect,
}

/// An authorization response: a redirect to the client's verified redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthorizationRedirect {
    /// The full URL to redirect to.
    pub location: String,
    /// The code (success) or the error (failure).
    pub result: Result<String, Rejection>,
    /// The `state` echoed.
    pub state: Option<String>,
}

/// What the user agent should be told after an authorization or consent request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthorizeOutcome {
    /// Ask the user to log in first.
    Login(LoginPrompt),
    /// Ask the user.
    Consent(ConsentPrompt),
    /// Show the error with a link back to the client (no automatic redirect).
    Inform(Inform),
    /// Send the browser to the page of this pending authorization (after a login or logout
    /// form: post, redirect, get).
    ShowPending(String),
    /// Redirect to the client (success or error): the client and redirect URI are verified.
    Redirect(AuthorizationRedirect),
    /// Show the error and never redirect: the client or redirect URI could not be verified
    /// (OAuth 2.1 §4.1.2.1), and redirecting would make the server an open redirector.
    Refuse(Rejection),
}

/// The user's answer on the consent page.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentDecision {
    /// The pending authorization.
    pub id: String,
    /// The CSRF token from the form.
    pub csrf: String,
    /// Approve or deny.
    pub approve: bool,
    /// The browser's session cookie.
    pub session: Option<String>,
}

impl AuthorizationServer {
    /// The authorization endpoint. Until the client and redirect URI are verified, an error is
    /// shown, never redirected ([AZ-4](crate::requirements#AZ-4)). After that, an error is still shown rather than
    /// redirected, with a link to the client the user may follow: no user has seen the request
    /// yet, and a redirect now would make the server an open redirector ([AZ-7](crate::requirements#AZ-7), [AZ-8](crate::requirements#AZ-8), [AZ-9](crate::requirements#AZ-9)).
    /// A valid request becomes a pending authorization bound to the browser session (a new
    /// one if the browser has none); the answer is the login page, or the consent page for
    /// the logged-in user.
    // spec: AZ-2, AZ-3, AZ-4, AZ-6, AZ-7, AZ-10, PKCE-6, PKCE-7, PKCE-8, RES-12, AZ-29, CIMD-6, CIMD-7
    pub fn authorize(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        params: &Params,
        accounts: &Accounts,
        browser: &Browser,
    ) -> Answer {
        let (client_id, client, redirect_uri, redirect_uri_sent) =
            match self.verify_client_and_redirect(now, params) {
                Ok(v) => v,
                Err(r) => return AuthorizeOutcome::Refuse(r).into(),
            };
        let state = match params.one("state") {
            Ok(s) if s.is_none_or(|s| s.len() <= self.config.limits.state_len) => {
                s.map(str::to_owned)
            }
            // An unusable state cannot be echoed; refuse rather than redirect without it.
            Ok(_) => return AuthorizeOutcome::Refuse(Rejection::TooLarge).into(),
            Err(r) => return AuthorizeOutcome::Refuse(r).into(),
        };
        let redirect_host = crate::uri::parse_uri(&redirect_uri)
            .map(|p| p.host.to_owned())
            .unwrap_or_default();
        let inform = |this: &Self, r: Rejection| -> Answer {
            AuthorizeOutcome::Inform(Inform {
                client_name: client.client_name.clone(),
                client_id: client_id.clone(),
                redirect_host: redirect_host.clone(),
                redirect: this.redirect(&redirect_uri, Err(r), state.clone()),
            })
            .into()
        };
        let binding = match self.bind(
            now,
            params,
            &client_id,
            &client,
            &redirect_uri,
            redirect_uri_sent,
        ) {
            Ok(b) => b,
            Err(r) => return inform(self, r),
        };
        self.make_room(now, self.pending.len(), self.config.limits.pending);
        if self.pending.len() >= self.config.limits.pending {
            return inform(self, Rejection::Full);
        }
        // One client or one address cannot take the whole table (SEC-17).
        let limits = &self.config.limits;
        let (mut per_client, mut per_address) = (0usize, 0usize);
        for p in self.pending.values().filter(|p| now < p.expires_at) {
            per_client += usize::from(p.prompt.client_id == client_id);
            per_address += usize::from(browser.peer.is_some() && p.peer == browser.peer);
        }
        if per_client >= limits.pending_per_client || per_address >= limits.pending_per_address {
            return inform(self, Rejection::Full);
        }
        let (set_session, session) = match self.session(now, browser.session.as_deref()) {
            Some(key) => (None, key),
            None => {
                let subject = match accounts {
                    Accounts::Single(subject) => Some(subject.clone()),
                    Accounts::Users(_) => None,
                };
                match self.begin_session(now, entropy, subject) {
                    Ok((cookie, key)) => (Some(cookie), key),
                    Err(r) => return inform(self, r),
                }
            }
        };
        let document_host = self
            .is_document_client(client_id.as_str())
            .then(|| crate::uri::parse_uri(client_id.as_str()).map(|p| p.authority()))
            .and_then(Result::ok);
        let prompt = ConsentPrompt {
            id: mint(entropy),
            csrf: mint(entropy),
            client_id: client_id.clone(),
            client_name: client.client_name.clone(),
            redirect_host,
            redirect_uri: redirect_uri.clone(),
            client_document_host: document_host.clone(),
            localhost_redirects_only: document_host.is_some()
                && client.redirect_uris.iter().all(RedirectUri::is_loopback),
            scopes: binding.scopes.clone(),
            resource: binding.resource.clone(),
            user: None,
            can_logout: false,
        };
        let id = prompt.id.clone();
        let expires_at = now.plus(self.config.lifetimes.consent);
        let subject = self.session_subject(&session).cloned();
        self.touch(RecordKey::Pending(id.clone()));
        self.pending.insert(
            id.clone(),
            Pending {
                prompt,
                binding,
                state,
                expires_at,
                session,
                subject,
                peer: browser.peer,
            },
        );
        Answer {
            outcome: self.prompt_for(&id, accounts),
            set_session,
        }
    }

    /// The user's decision on a consent prompt. It counts only if it comes from the browser
    /// session the prompt was shown in, logged in as the user it was shown to ([AZ-29](crate::requirements#AZ-29): no
    /// consent CSRF). Approval mints a code for that user, bound to everything the request
    /// named; denial redirects with `access_denied`. Either way the prompt is used up.
    // spec: AZ-10, AZ-14, AZ-15, AZ-16, AZ-21, AZ-25, AZ-29, AZ-30
    pub fn consent(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        decision: &ConsentDecision,
    ) -> AuthorizeOutcome {
        let Some(pending) = self.pending.get(&decision.id) else {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        };
        if !bool::from(
            pending
                .prompt
                .csrf
                .as_bytes()
                .ct_eq(decision.csrf.as_bytes()),
        ) {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        }
        let pending_session = pending.session;
        let pending_subject = pending.subject.clone();
        let session = self.session(now, decision.session.as_deref());
        let session_user = session.and_then(|k| self.session_subject(&k)).cloned();
        let subject = if mutated!(self.config, skip_session_binding) {
            // The defense off: whoever's browser posts the form decides, as that user.
            session_user
        } else {
            let bound = session.is_some_and(|k| k.ct_eq(&pending_session));
            pending_subject.filter(|s| bound && session_user.as_ref() == Some(s))
        };
        let Some(subject) = subject else {
            return AuthorizeOutcome::Refuse(Rejection::SessionMismatch);
        };
        let Some(Pending {
            binding,
            state,
            expires_at,
            ..
        }) = self.pending.remove(&decision.id)
        else {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        };
        self.touch(RecordKey::Pending(decision.id.clone()));
        if now >= expires_at {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        }
        let redirect_uri = binding.redirect_uri.clone();
        if !decision.approve {
            return AuthorizeOutcome::Redirect(self.redirect(
                &redirect_uri,
                Err(Rejection::UserDenied),
                state,
            ));
        }
        self.make_room(now, self.codes.len(), self.config.limits.codes);
        if self.codes.len() >= self.config.limits.codes {
            return AuthorizeOutcome::Redirect(self.redirect(
                &redirect_uri,
                Err(Rejection::Full),
                state,
            ));
        }
        let code = mint(entropy);
        let binding = CodeBinding {
            subject,
            expires_at: now.plus(self.config.lifetimes.code.min(600)),
            ..binding
        };
        let digest = SecretDigest::of(&code);
        self.codes.insert(digest, CodeState::Issued(binding));
        self.touch(RecordKey::Code(digest));
        AuthorizeOutcome::Redirect(self.redirect(&redirect_uri, Ok(code), state))
    }

    // ---- authorization endpoint helpers ---------------------------------------------------

    // spec: CIMD-3
    fn verify_client_and_redirect(
        &self,
        now: UnixTime,
        params: &Params,
    ) -> Result<(ClientId, RegisteredClient, String, bool), Rejection> {
        let client_id = ClientId(
            params
                .one("client_id")?
                .ok_or(Rejection::UnknownClient)?
                .to_owned(),
        );
        // A client ID URL's document is its only source of redirect URIs (CIMD-3).
        let client = self
            .client_for_authorization(now, &client_id)
            .ok_or(Rejection::UnknownClient)?;
        let (redirect_uri, sent) = match params.one("redirect_uri")? {
            Some(r) => {
                let requested =
                    RedirectUri::parse(r).map_err(|_| Rejection::RedirectUriMismatch)?;
                // spec: CIMD-3 (a client ID URL's redirect URIs are its document's)
                #[allow(clippy::overly_complex_bool_expr)] // `mutated!` is `false` without the cfg
                let lax = mutated!(self.config, lax_redirect)
                    || (mutated!(self.config, lax_document_redirect)
                        && self.is_document_client(client_id.as_str()));
                if !lax
                    && !client
                        .redirect_uris
                        .iter()
                        .any(|reg| reg.matches(&requested))
                {
                    return Err(Rejection::RedirectUriMismatch);
                }
                (r.to_owned(), true)
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.as_str().to_owned(), false),
                _ => return Err(Rejection::RedirectUriRequired),
            },
        };
        Ok((client_id, client.clone(), redirect_uri, sent))
    }

    fn bind(
        &self,
        now: UnixTime,
        params: &Params,
        client_id: &ClientId,
        client: &RegisteredClient,
        redirect_uri: &str,
        redirect_uri_sent: bool,
    ) -> Result<CodeBinding, Rejection> {
        if params.one("response_type")? != Some("code") {
            return Err(Rejection::ResponseTypeNotCode);
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(Rejection::GrantNotAllowed);
        }
        let challenge = CodeChallenge::from_request(
            params.one("code_challenge")?,
            params.one("code_challenge_method")?,
        );
        // The defense off: a request without a challenge gets a code bound to none.
        #[cfg(mcp_auth_mutations)]
        let challenge = match challenge {
            Err(Rejection::MissingCodeChallenge) if self.config.mutations.optional_pkce => {
                Ok(CodeChallenge::absent())
            }
            other => other,
        };
        let challenge = challenge?;
        let resource =
            self.known_resource(params.one("resource")?.ok_or(Rejection::MissingResource)?)?;
        let scopes = match params.one("scope")? {
            Some(s) => ScopeSet::parse(s).map_err(|_| Rejection::UnknownScope)?,
            None => self.config.default_scopes.clone(),
        };
        let known = self
            .config
            .resources
            .get(&resource)
            .cloned()
            .unwrap_or_default();
        if !scopes.is_subset(&known) {
            return Err(Rejection::UnknownScope);
        }
        Ok(CodeBinding {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            redirect_uri_sent,
            challenge,
            resource,
            scopes,
            subject: Subject(String::new()),
            expires_at: now,
        })
    }

    /// A `resource` value this server issues tokens for, in canonical form.
    // spec: RES-6, RES-12
    pub(super) fn known_resource(&self, resource: &str) -> Result<ResourceUri, Rejection> {
        let resource = ResourceUri::parse(resource, self.config.http_policy)
            .map_err(|_| Rejection::UnknownResource)?;
        if self.config.resources.contains_key(&resource) {
            Ok(resource)
        } else {
            Err(Rejection::UnknownResource)
        }
    }

    /// Build the redirect: `code` or `error`/`error_description`, then `state`, then `iss`.
    // spec: AZ-10, AZ-21, AZ-5
    fn redirect(
        &self,
        redirect_uri: &str,
        result: Result<String, Rejection>,
        state: Option<String>,
    ) -> AuthorizationRedirect {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(4);
        match &result {
            Ok(code) => pairs.push(("code", code)),
            Err(r) => {
                pairs.push(("error", r.code().as_str()));
                pairs.push(("error_description", r.description()));
            }
        }
        if let Some(s) = &state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", self.config.issuer.as_str()));
        let encoded = crate::form::encode(pairs);
        let location = match RedirectUri::parse(redirect_uri) {
            Ok(r) => r.with_query(&encoded),
            Err(_) => format!("{redirect_uri}?{encoded}"),
        };
        AuthorizationRedirect {
            location,
            result,
            state,
        }
    }
}
