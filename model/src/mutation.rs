//! The mutation table: each defense, the switch that turns it off, and the property that must
//! then fail ("teeth").

use mcp_auth_proto::mutations::Mutations;

use crate::Config;
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
    /// Why more than one switch is needed, if it is (or why the defense cannot bite).
    pub note: &'static str,
    /// The configuration it is checked on ([`Config::named`]); `small` cases run on the
    /// configuration given on the command line.
    pub config: &'static str,
    /// What the check must find.
    pub expect: Teeth,
}

/// What a mutation check must find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teeth {
    /// A counterexample to [`MutationCase::property`] (a safety property).
    Counterexample,
    /// The defense is covered by another one: every safety property holds on the whole
    /// configuration, and the example [`MutationCase::property`] (which shows the mutation is
    /// live) is found. [`MutationCase::note`] gives the argument.
    Redundant,
}

impl MutationCase {
    /// The configuration it is checked on, with its switches off (`small` cases: `base`).
    pub fn configuration(&self, base: &Config) -> Config {
        let cfg = if self.config == "small" {
            base.clone()
        } else {
            Config::named(self.config).expect("known configuration")
        };
        cfg.with_mutations(self.mutations)
    }
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
            config: "small",
            expect: Teeth::Counterexample,
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
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "iss",
            defense: "client checks `iss` on the callback (AZ-20, RFC 9207)",
            mutations: m(|m| m.skip_iss_check = true),
            property: p::MIXUP,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "iss-goal",
            defense: "client checks `iss` on the callback (AZ-20, RFC 9207), goal level",
            mutations: m(|m| m.skip_iss_check = true),
            property: p::REDEEM,
            note: "mix-up: the attacker's AS forwards alice to the honest AS; her client sends \
                   the honest code with its PKCE verifier to the attacker's token endpoint, \
                   and the attacker redeems it at the honest AS",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "redirect",
            defense: "AS matches redirect URIs exactly (AZ-3)",
            mutations: m(|m| m.lax_redirect = true),
            property: p::REDIRECT,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "audience",
            defense: "RS checks `aud` (RS-2)",
            mutations: m(|m| m.skip_audience_check = true),
            property: p::AUD,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "single-use",
            defense: "AS marks codes used (TOK-6)",
            mutations: m(|m| m.reusable_codes = true),
            property: p::ONCE,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "rotation",
            defense: "AS accepts only the current refresh token (RT-1)",
            mutations: m(|m| m.skip_refresh_rotation = true),
            property: p::REFRESH,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "revocation",
            defense: "AS revokes the grant on refresh-token replay (RT-2)",
            mutations: m(|m| m.skip_refresh_revocation = true),
            property: p::REVOKE,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "resource",
            defense: "AS binds the token audience to the consented resource (RES-14)",
            mutations: m(|m| m.skip_resource_binding = true),
            property: p::RESOURCE,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "prm",
            defense: "client checks PRM `resource` (DISC-4)",
            mutations: m(|m| m.skip_prm_resource_check = true),
            property: p::DISCOVERY,
            note: "only DISCOVERY itself fails: the client never adopts PRM `resource` \
                   (its `resource` is always its own server, RES-3), so no token goes astray",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "session",
            defense: "AS accepts a consent decision only from the browser session and user the \
                      prompt was shown to (AZ-29)",
            mutations: m(|m| m.skip_session_binding = true),
            property: p::AUTHZ,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "token-target",
            defense: "client attaches a token only to its own server (CLI-5)",
            mutations: m(|m| m.skip_token_target_check = true),
            property: p::PASSTHROUGH,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "document-redirect",
            defense: "AS accepts for a client ID URL only a redirect URI its document lists \
                      (CIMD-3)",
            mutations: m(|m| m.lax_document_redirect = true),
            property: p::CIMD_THEFT,
            note: "",
            config: "cimd",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "document-client-id",
            defense: "AS accepts a client metadata document only if its `client_id` is the URL \
                      it was fetched from (CIMD-3)",
            mutations: m(|m| m.skip_document_client_id_check = true),
            property: p::CIMD_IMPOSTOR,
            note: "redundant in this core: the AS keys the document by the URL it fetched, \
                   never by the `client_id` inside, and takes nothing else from that member; \
                   a document with a foreign `client_id` at an attacker URL gives the attacker \
                   only what a document naming its own URL gives (a client it owns, consented \
                   to as such), and the attacker cannot write documents at the honest client's \
                   URL. With the check off the impostor document is accepted (the example) \
                   and every property still holds",
            config: "cimd",
            expect: Teeth::Redundant,
        },
    ]
}

/// A case by name.
pub fn case(name: &str) -> Option<MutationCase> {
    cases().into_iter().find(|c| c.name == name)
}
