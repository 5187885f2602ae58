//! The discovery documents: Protected Resource Metadata (RFC 9728) and Authorization Server
//! Metadata (RFC 8414, also read from OpenID Connect Discovery documents).
//!
//! Members with no value are left out (never `null`, never `[]`); unknown members are ignored
//! when reading.

use serde::{Deserialize, Serialize};

/// Largest metadata document the client reads.
pub const DOCUMENT_LEN_MAX: usize = 64 * 1024;

/// Well-known suffix of Protected Resource Metadata (RFC 9728 §3).
pub const PRM_SUFFIX: &str = "oauth-protected-resource";
/// Well-known suffix of Authorization Server Metadata (RFC 8414 §3).
pub const ASM_SUFFIX: &str = "oauth-authorization-server";
/// Well-known suffix of OpenID Connect Discovery.
pub const OIDC_SUFFIX: &str = "openid-configuration";

fn is_false(b: &bool) -> bool {
    !*b
}

fn empty<T>(v: &[T]) -> bool {
    v.is_empty()
}

/// Protected Resource Metadata (RFC 9728 §2).
// spec: PRM-1, PRM-5
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the canonical MCP server URI.
    pub resource: String,
    /// Issuers of the authorization servers that issue tokens for this resource.
    #[serde(default, skip_serializing_if = "empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default, skip_serializing_if = "empty")]
    pub scopes_supported: Vec<String>,
    /// How the token may be presented (`header` only for us).
    #[serde(default, skip_serializing_if = "empty")]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

/// Authorization Server Metadata (RFC 8414 §2), as we publish it and as the client reads it
/// (from RFC 8414 or OpenID Connect Discovery documents).
// spec: ASM-1, ASM-4, ASM-5
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// The authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The dynamic client registration endpoint (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// The token revocation endpoint (RFC 7009; RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Client authentication methods of the revocation endpoint (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// The token introspection endpoint (RFC 7662; RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Client authentication methods of the introspection endpoint (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The JWK Set of the token signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "empty")]
    pub scopes_supported: Vec<String>,
    /// Response types (`code`).
    #[serde(default, skip_serializing_if = "empty")]
    pub response_types_supported: Vec<String>,
    /// Response modes (`query`).
    #[serde(default, skip_serializing_if = "empty")]
    pub response_modes_supported: Vec<String>,
    /// Grant types.
    #[serde(default, skip_serializing_if = "empty")]
    pub grant_types_supported: Vec<String>,
    /// Token endpoint client authentication methods.
    #[serde(default, skip_serializing_if = "empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// PKCE methods (`S256`).
    #[serde(default, skip_serializing_if = "empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub authorization_response_iss_parameter_supported: bool,
    /// Client ID Metadata Documents (MCP 2025-11-25, SEP-991): the AS accepts an https URL
    /// as `client_id` and fetches the client's metadata from it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub client_id_metadata_document_supported: bool,
    /// Documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: PRM-5, ASM-5
    #[test]
    fn empty_members_are_left_out() {
        let prm = ProtectedResourceMetadata {
            resource: "https://h/mcp".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&prm).unwrap(),
            r#"{"resource":"https://h/mcp"}"#
        );
        let asm = AuthorizationServerMetadata {
            issuer: "https://as".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&asm).unwrap(),
            r#"{"issuer":"https://as"}"#
        );
    }

    // spec: DISC-5
    #[test]
    fn unknown_members_are_ignored() {
        let prm: ProtectedResourceMetadata = serde_json::from_str(
            r#"{"resource":"https://h/mcp","authorization_servers":["https://as"],"x":{"y":1}}"#,
        )
        .unwrap();
        assert_eq!(prm.authorization_servers, vec!["https://as".to_string()]);
    }
}
