//! The mutation table: each defense, the switch that turns it off, and the property that must
//! then fail ("teeth").

use mcp_auth_proto::mutations::Mutations;

use crate::properties as p;

/// One row of the table.
#[derive(Clone, Debug)]
pub struct MutationCase {
    /// CLI name.
    pub name: &'static str,
    /// The defense, in words.
    pub defense: &'static str,
    /// The switches turned off.
    pub mutations: Mutations,
    /// The property that must get a counterexample.
    pub property: &'static str,
    /// Why more than one switch is needed, if it is.
    pub note: &'static str,
}

fn m(f: impl FnOnce(&mut Mutations)) -> Mutations {
    let mut m = Mutations::default();
    f(&mut m);
    m
}

/// Every defense of the core.
pub fn cases() -> Vec<MutationCase> {
    vec![
        MutationCase {
            name: "pkce",
            defense: "AS verifies PKCE S256 at the token endpoint (PKCE-9)",
            mutations: m(|m| m.skip_pkce = true),
            property: p::AUTHZ,
            note: "",
        },
        MutationCase {
            name: "state",
            defense: "client checks `state` on the callback (AZ-11), with PKCE off",
            mutations: m(|m| {
                m.skip_state_check = true;
                m.skip_pkce = true;
            }),
            property: p::SESSION,
            note: "state alone has no teeth: PKCE already binds the code to the session \
                   (RFC 9700 §4.7.1); see the `state-alone` check",
        },
        MutationCase {
            name: "iss",
            defense: "client checks `iss` on the callback (AZ-20, RFC 9207)",
            mutations: m(|m| m.skip_iss_check = true),
            property: p::MIXUP,
            note: "",
        },
        MutationCase {
            name: "redirect",
            defense: "AS matches redirect URIs exactly (AZ-3)",
            mutations: m(|m| m.lax_redirect = true),
            property: p::REDIRECT,
            note: "",
        },
        MutationCase {
            name: "audience",
            defense: "RS checks `aud` (RS-2)",
            mutations: m(|m| m.skip_audience_check = true),
            property: p::AUD,
            note: "",
        },
        MutationCase {
            name: "single-use",
            defense: "AS marks codes used (TOK-6)",
            mutations: m(|m| m.reusable_codes = true),
            property: p::ONCE,
            note: "",
        },
        MutationCase {
            name: "rotation",
            defense: "AS accepts only the current refresh token (RT-1)",
            mutations: m(|m| m.skip_refresh_rotation = true),
            property: p::REFRESH,
            note: "",
        },
        MutationCase {
            name: "revocation",
            defense: "AS revokes the grant on refresh-token replay (RT-2)",
            mutations: m(|m| m.skip_refresh_revocation = true),
            property: p::REVOKE,
            note: "",
        },
        MutationCase {
            name: "resource",
            defense: "AS binds the token audience to the consented resource (RES-14)",
            mutations: m(|m| m.skip_resource_binding = true),
            property: p::RESOURCE,
            note: "",
        },
        MutationCase {
            name: "prm",
            defense: "client checks PRM `resource` (DISC-4)",
            mutations: m(|m| m.skip_prm_resource_check = true),
            property: p::DISCOVERY,
            note: "only DISCOVERY itself fails: the client never adopts PRM `resource` \
                   (its `resource` is always its own server, RES-3), so no token goes astray",
        },
        MutationCase {
            name: "session",
            defense: "AS accepts a consent decision only from the browser session and user the \
                      prompt was shown to (AZ-29)",
            mutations: m(|m| m.skip_session_binding = true),
            property: p::AUTHZ,
            note: "",
        },
        MutationCase {
            name: "token-target",
            defense: "client attaches a token only to its own server (CLI-5)",
            mutations: m(|m| m.skip_token_target_check = true),
            property: p::PASSTHROUGH,
            note: "",
        },
    ]
}

/// A case by name.
pub fn case(name: &str) -> Option<MutationCase> {
    cases().into_iter().find(|c| c.name == name)
}
