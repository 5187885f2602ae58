//! Switches that turn single defenses off, for the model checker's mutation tests ("teeth").
//!
//! They exist only when the crate is compiled with the cfg `mcp_auth_mutations`
//! (`RUSTFLAGS="--cfg mcp_auth_mutations"`, in a target directory of its own), as quinn gates its
//! fuzzing hooks on `cfg(fuzzing)`. A cfg is not a cargo feature: no other crate can turn it on
//! through its dependencies, so no build of the servers (`cargo build --workspace` included) can
//! contain the switches. Each guard in the core reads one flag through `mutated!`, which without
//! the cfg is the constant `false`, so the checks it guards run unconditionally and the compiled
//! core is the same as without the guard.

/// Defenses to turn off. Every flag is `false` by default: all defenses on.
#[cfg(mcp_auth_mutations)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mutations {
    /// AS: skip the PKCE verification at the token endpoint ([PKCE-9](crate::requirements#PKCE-9)).
    pub skip_pkce: bool,
    /// AS: accept any redirect URI for a client, not only a registered one ([AZ-3](crate::requirements#AZ-3)).
    pub lax_redirect: bool,
    /// AS: do not mark a redeemed code as used ([TOK-6](crate::requirements#TOK-6), [TOK-7](crate::requirements#TOK-7)).
    pub reusable_codes: bool,
    /// AS: redeem a code presented by another client than the one it was issued to
    /// ([TOK-5](crate::requirements#TOK-5)). The grant is the presenting client's; its user,
    /// resource and scopes are still the code's.
    pub skip_client_binding: bool,
    /// AS: do not compare the token request's `redirect_uri` with the authorization
    /// request's ([TOK-10](crate::requirements#TOK-10)).
    pub skip_redirect_binding: bool,
    /// AS: accept an authorization request without `code_challenge`
    /// ([PKCE-7](crate::requirements#PKCE-7)), and redeem its code without any `code_verifier`
    /// check ([PKCE-10](crate::requirements#PKCE-10)). A request that has a challenge, and its
    /// code, are checked as always.
    pub optional_pkce: bool,
    /// AS: accept a refresh token from another client than the one it was issued to
    /// ([RT-3](crate::requirements#RT-3)). The new tokens are still the grant's client's.
    pub skip_refresh_client_binding: bool,
    /// AS: do not bind a refresh to the grant's resource: a refresh request's `resource`
    /// need not be the grant's, and a resource the server serves becomes the grant's, so the
    /// new access token's audience ([RES-14](crate::requirements#RES-14)).
    pub skip_refresh_resource_binding: bool,
    /// AS: accept a rotated-out refresh token as if it were the current one ([RT-1](crate::requirements#RT-1)).
    pub skip_refresh_rotation: bool,
    /// AS: do not revoke the grant when a rotated-out refresh token comes back ([RT-2](crate::requirements#RT-2)).
    pub skip_refresh_revocation: bool,
    /// AS: do not bind the token to the consented resource: the token request's `resource`
    /// is not compared with the code's and becomes the audience ([RES-14](crate::requirements#RES-14)).
    pub skip_resource_binding: bool,
    /// AS: accept a consent decision from any browser session, made as that session's user,
    /// not only from the session and user the prompt was shown to ([AZ-29](crate::requirements#AZ-29)).
    pub skip_session_binding: bool,
    /// AS: accept a Client ID Metadata Document whose `client_id` is not the URL it was
    /// fetched from ([CIMD-3](crate::requirements#CIMD-3)).
    pub skip_document_client_id_check: bool,
    /// AS: accept, for a client ID URL, a redirect URI its metadata document does not list
    /// ([CIMD-3](crate::requirements#CIMD-3)); registered clients keep the exact match.
    pub lax_document_redirect: bool,
    /// RS: do not check `aud` ([RS-2](crate::requirements#RS-2)).
    pub skip_audience_check: bool,
    /// RS: do not compare `iss` with the trusted issuer ([JWT-7](crate::requirements#JWT-7)).
    pub skip_issuer_check: bool,
    /// RS: do not verify the JWT's signature ([JWT-9](crate::requirements#JWT-9)), nor ask a
    /// [`VerificationMemo`](crate::jwt::VerificationMemo); the header rules, the key
    /// selection and every claim are still checked.
    pub skip_signature_check: bool,
    /// Client: accept a callback whatever its `state` ([AZ-11](crate::requirements#AZ-11)).
    pub skip_state_check: bool,
    /// Client: accept a callback whatever its `iss` ([AZ-20](crate::requirements#AZ-20), RFC 9207).
    pub skip_iss_check: bool,
    /// Client: accept a PRM document whose `resource` is not the server asked about ([DISC-4](crate::requirements#DISC-4)).
    pub skip_prm_resource_check: bool,
    /// Client: attach the access token to requests for any server, not only the one it was
    /// obtained for ([CLI-5](crate::requirements#CLI-5)).
    pub skip_token_target_check: bool,
}

/// `true` when the defense `$flag` is turned off in the configuration `$config` (which has a
/// `mutations: Mutations` field under the cfg); always `false` without the cfg.
#[cfg(mcp_auth_mutations)]
macro_rules! mutated {
    ($config:expr, $flag:ident) => {
        $config.mutations.$flag
    };
}

/// `true` when the defense `$flag` is turned off; without the cfg `mcp_auth_mutations`, the
/// constant `false` (the configuration is only borrowed, so no unused-variable warnings).
#[cfg(not(mcp_auth_mutations))]
macro_rules! mutated {
    ($config:expr, $flag:ident) => {{
        let _ = &$config;
        false
    }};
}

pub(crate) use mutated;
