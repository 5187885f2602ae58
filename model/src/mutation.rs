//! The mutation table: each defense, the switch that turns it off, and the property that must
//! then fail ("teeth").

use mcp_auth_proto::mutations::Mutations;

use crate::Config;
use crate::properties as p;
use crate::report::Outcome;

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
    /// A counterexample to [`MutationCase::property`], a goal-level property
    /// ([`p::GOALS`]): what alice loses without the defense.
    Counterexample,
    /// The defense is covered by another one: every goal holds on the whole configuration,
    /// and [`MutationCase::property`] shows the mutation is live (an example that is found,
    /// or a diagnostic that fails). [`MutationCase::note`] gives the argument.
    Redundant,
}

impl MutationCase {
    /// For a [`Teeth::Redundant`] case, on a complete run of its configuration: the goals
    /// that failed (none if the argument holds), and whether the mutation showed itself live.
    pub fn redundancy(&self, o: &Outcome) -> (Vec<&'static str>, bool) {
        let failed = o
            .results
            .iter()
            .filter(|r| p::is_goal(r.name) && !r.ok)
            .map(|r| r.name)
            .collect();
        let live = o.result(self.property).is_some_and(|r| {
            if p::SAFETY.contains(&self.property) {
                !r.ok
            } else {
                r.ok
            }
        });
        (failed, live)
    }

    /// The configuration it is checked on, with its switches off (`small` counterexample
    /// cases: `base`). A redundant case explores its whole configuration, so it keeps its own
    /// (on `standard` that would be a million states for no further argument).
    pub fn configuration(&self, base: &Config) -> Config {
        let cfg = if self.config == "small" && self.expect == Teeth::Counterexample {
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
            property: p::THEFT,
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
            property: p::THEFT,
            note: "mix-up: the attacker's AS forwards alice to the honest AS; her client sends \
                   the honest code with its PKCE verifier to the attacker's token endpoint",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "redirect",
            defense: "AS matches redirect URIs exactly (AZ-3)",
            mutations: m(|m| m.lax_redirect = true),
            property: p::THEFT,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "audience",
            defense: "RS checks `aud` (RS-2)",
            mutations: m(|m| m.skip_audience_check = true),
            property: p::SERVED,
            note: "A5: the malicious MCP server presents alice's token for itself at the honest \
                   one",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "single-use",
            defense: "AS marks codes used (TOK-6)",
            mutations: m(|m| {
                m.reusable_codes = true;
                m.skip_pkce = true;
            }),
            property: p::REUSE,
            note: "single use alone has no teeth: PKCE binds the code to alice's client, so no \
                   one else can present it a second time; with PKCE off too, a code of hers \
                   read at her callback (A3) and redeemed after her keeps yielding tokens. \
                   See the `single-use-alone` check",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "rotation",
            defense: "AS accepts only the current refresh token (RT-1)",
            mutations: m(|m| m.skip_refresh_rotation = true),
            property: p::REUSE,
            note: "a refresh token stolen from alice's session, presented after her client \
                   rotated it",
            config: "thief",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "revocation",
            defense: "AS revokes the grant on refresh-token replay (RT-2)",
            mutations: m(|m| m.skip_refresh_revocation = true),
            property: p::REUSE,
            note: "a refresh token stolen from alice's session and used first; when her client \
                   presents it, the thief's rotated token keeps working",
            config: "thief",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "resource",
            defense: "AS binds the token audience to the consented resource (RES-14)",
            mutations: m(|m| m.skip_resource_binding = true),
            property: p::THEFT,
            note: "alice approves the attacker's client for the attacker's server; its code is \
                   redeemed for the honest server",
            config: "phish",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "prm",
            defense: "client checks PRM `resource` (DISC-4)",
            mutations: m(|m| m.skip_prm_resource_check = true),
            property: p::DISCOVERY,
            note: "redundant in this client: it never adopts the PRM `resource` (its \
                   `resource` is always the server it was pointed at, RES-3), so a spoofed PRM \
                   gets the malicious server a token for itself only; with the check off the \
                   diagnostic DISCOVERY fails (the mutation is live) and every goal holds",
            config: "small",
            expect: Teeth::Redundant,
        },
        MutationCase {
            name: "session",
            defense: "AS accepts a consent decision only from the browser session and user the \
                      prompt was shown to (AZ-29)",
            mutations: m(|m| m.skip_session_binding = true),
            property: p::THEFT,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "token-target",
            defense: "client attaches a token only to its own server (CLI-5)",
            mutations: m(|m| m.skip_token_target_check = true),
            property: p::THEFT,
            note: "",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "document-redirect",
            defense: "AS accepts for a client ID URL only a redirect URI its document lists \
                      (CIMD-3)",
            mutations: m(|m| m.lax_document_redirect = true),
            property: p::THEFT,
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
        MutationCase {
            name: "pkce-required",
            defense: "AS refuses an authorization request without `code_challenge` (PKCE-7)",
            mutations: m(|m| m.optional_pkce = true),
            property: p::THEFT,
            note: "PKCE downgrade: the attacker lures alice to an authorization request for her \
                   session's client and redirect URI without a challenge; the code reaches her \
                   callback (A3) and redeems without a verifier",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "signature",
            defense: "RS verifies the token's signature (JWT-9)",
            mutations: m(|m| m.skip_signature_check = true),
            property: p::SERVED,
            note: "the attacker's AS signs a token claiming the honest issuer, alice and her \
                   session's client; the honest MCP server serves it",
            config: "small",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "refresh-resource",
            defense: "AS refreshes only for the grant's resource (RES-14)",
            mutations: m(|m| m.skip_refresh_resource_binding = true),
            property: p::THEFT,
            note: "alice approves the attacker's client for the attacker's server; its refresh \
                   token is refreshed for the honest server",
            config: "phish",
            expect: Teeth::Counterexample,
        },
        MutationCase {
            name: "client-binding",
            defense: "AS redeems a code only for the client it was issued to (TOK-5)",
            mutations: m(|m| m.skip_client_binding = true),
            property: p::BOUND,
            note: "redundant for public clients given PKCE (every client here is public): a \
                   code presented by another client needs the verifier of the flow that \
                   obtained it, which only that flow's client holds; the attacker redeems its \
                   own codes as other clients (BOUND fails: live) and gains nothing of alice's. \
                   It guards confidential clients without PKCE, not modelled",
            config: "small",
            expect: Teeth::Redundant,
        },
        MutationCase {
            name: "redirect-binding",
            defense: "AS redeems a code only with the redirect URI it was issued for (TOK-10)",
            mutations: m(|m| m.skip_redirect_binding = true),
            property: p::BOUND,
            note: "redundant given PKCE and exact redirect matching at the authorization \
                   endpoint: a code reaches only a registered redirect URI of its client, and \
                   only the flow's client holds the verifier; with the check off the attacker \
                   redeems its own codes with another redirect URI (BOUND fails: live)",
            config: "small",
            expect: Teeth::Redundant,
        },
    ]
}

/// A case by name.
pub fn case(name: &str) -> Option<MutationCase> {
    cases().into_iter().find(|c| c.name == name)
}
