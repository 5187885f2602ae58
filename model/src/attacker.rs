//! The attacker (RFC 9700 §3, bounded): its consent CSRF, its token requests at the honest AS,
//! what it learns, its authorization requests, and the entropy of its actions.

use mcp_auth_proto::Sequential;
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::CodeState;

use crate::network::{form_request, json_field, mcp_call};
use crate::replay::{self, Role};
use crate::user_agent::consent_form;
use crate::{
    ALICE, ATTACKER_REDIRECT, ATTACKER_VERIFIER, Action, AuthModel, Event, HONEST_ISSUER,
    HONEST_RS, MALLORY, Party, Prm, SCOPE, Target, World, claims_of,
};

impl AuthModel {
    /// The attacker prepares a consent CSRF: mallory's browser opens an authorization of the
    /// attacker's own client (its redirect URI) for the honest MCP server, logs in, and stops
    /// at the consent page, whose form's `id` and `csrf` the attacker keeps.
    // spec: AZ-29
    pub(crate) fn prepare_consent_csrf(&self, w: &mut World) {
        let mut entropy = w.stream(Party::Attacker).clone();
        let url =
            Self::attacker_authorize_url(&w.attacker.clients[0], ATTACKER_REDIRECT, HONEST_RS);
        let form = self
            .open_authorization(w, &mut entropy, MALLORY, &url)
            .filter(|page| page.status == 200)
            .and_then(|page| consent_form(std::str::from_utf8(&page.body).ok()?));
        *w.stream(Party::Attacker) = entropy;
        w.knows().consent_form = form.map(|(_, _, id, csrf)| (id, csrf));
    }

    /// Consent CSRF: alice's browser posts the consent form mallory was shown (approve), with
    /// alice's session cookie. Where the redirect lands, the attacker reads the code (its own
    /// redirect URI).
    // spec: AZ-29
    pub(crate) fn consent_csrf(&self, w: &mut World) {
        let Some((id, csrf)) = w.attacker.consent_form.clone() else {
            return;
        };
        let mut entropy = w.stream(Party::Attacker).clone();
        let post = form_request(
            "/consent",
            &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
        );
        let answer = self.browser_request(w, &mut entropy, ALICE, post);
        *w.stream(Party::Attacker) = entropy;
        if let Some(location) = Self::redirect_of(w, &answer) {
            Self::land(w, &location, Party::Attacker);
        }
    }

    /// (client id, redirect URI, resource) a code of the honest AS is bound to.
    pub(crate) fn binding(w: &World, code: &str) -> Option<(String, String, String)> {
        w.honest_as.code_state(code).map(|s| {
            let b = match s {
                CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b,
            };
            (
                b.client_id.0.clone(),
                b.redirect_uri.clone(),
                b.resource.as_str().to_owned(),
            )
        })
    }

    pub(crate) fn sent(w: &World, key: &str) -> u8 {
        w.attacker.sent.get(key).copied().unwrap_or(0)
    }

    pub(crate) fn bump(w: &mut World, key: String) {
        *w.knows().sent.entry(key).or_insert(0) += 1;
    }

    /// The attacker learns an access token and presents it at the honest MCP server at once
    /// (later it could only have expired).
    pub(crate) fn attacker_learns_token(w: &mut World, token: String) {
        let header = format!("Bearer {token}");
        let result = Self::honest_mcp(w, &mcp_call(Some(&header)));
        replay::record(|| Self::mcp_observation(Role::Attacker, Target::Honest, &result));
        if result.is_ok()
            && let Some(claims) = claims_of(&token)
        {
            w.audit_mut().record(Event::Served {
                by: Party::Attacker,
                claims,
            });
        }
        w.knows().access_tokens.insert(token);
    }

    /// The attacker's token request at the honest AS; learns what comes back.
    pub(crate) fn attacker_token_request(&self, w: &mut World, pairs: &[(&str, &str)]) -> bool {
        let request = form_request(&format!("{HONEST_ISSUER}/token"), pairs);
        let client_id = pairs
            .iter()
            .find(|(k, _)| *k == "client_id")
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_default();
        let response = self.route(w, Party::Attacker, &request, Prm::Genuine);
        if response.status != 200 {
            return false;
        }
        if let Some(at) = json_field(&response.body, "access_token") {
            Self::attacker_learns_token(w, at);
        }
        if let Some(rt) = json_field(&response.body, "refresh_token") {
            w.knows().refresh_tokens.insert(rt, client_id);
        }
        true
    }

    pub(crate) fn attacker_authorize_url(
        client_id: &str,
        redirect: &str,
        resource: &str,
    ) -> String {
        let query = Self::attacker_authorize_query(client_id, redirect, resource);
        format!("{HONEST_ISSUER}/authorize?{query}")
    }

    /// The query of the attacker's authorization request (its own PKCE verifier and state);
    /// the replay on the real servers sends the same one.
    pub fn attacker_authorize_query(client_id: &str, redirect: &str, resource: &str) -> String {
        let challenge = CodeVerifier::parse(ATTACKER_VERIFIER)
            .expect("valid verifier")
            .challenge();
        mcp_auth_proto::form::encode([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", "attacker-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", resource),
            ("scope", SCOPE),
        ])
    }

    /// The attacker's entropy for one of its actions: a stream of its own, seeded from the
    /// action and how often it was used, so that independent attacker actions commute (the
    /// attacker's stream is not part of the state between actions).
    pub(crate) fn attacker_seed(w: &World, action: &Action) -> Sequential {
        let uses = match action {
            Action::AttackerRedeem { code, resource } => {
                Self::sent(w, &format!("redeem {code} {resource:?}"))
            }
            Action::AttackerRefresh { .. } => w.attacker.refreshes,
            _ => 0,
        };
        // FNV-1a of the label `{action:?}/{uses}`, low 16 bits left for the counter.
        let mut label = crate::memo::Fnv1a::default();
        std::fmt::Write::write_fmt(&mut label, format_args!("{action:?}/{uses}"))
            .expect("hashing cannot fail");
        Sequential(label.0 & !0xFFFF)
    }
}
