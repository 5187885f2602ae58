//! The attacker (RFC 9700 §3, bounded): its consent CSRF, its token requests at the honest AS,
//! what it learns, its authorization requests, and the entropy of its actions.

use mcp_auth_proto::jwt::{Ed25519Signer, Signer};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::CodeState;
use mcp_auth_proto::{Sequential, UnixTime};

use crate::network::{form_request, json_field, mcp_call};
use crate::replay::{self, Role};
use crate::{
    ALICE, ATTACKER_REDIRECT, ATTACKER_VERIFIER, Action, AuthModel, EVIL_SEED, Event,
    HONEST_ISSUER, HONEST_RS, MALLORY, Party, Prm, SCOPE, Target, World, claims_of,
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
            .and_then(|page| {
                let prompt = page.answered.consent()?;
                Some((prompt.id.clone(), prompt.csrf.clone()))
            });
        *w.stream(Party::Attacker) = entropy;
        w.knows().consent_form = form;
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
        Self::attacker_presents(w, &token);
        w.knows().access_tokens.insert(token);
    }

    /// The attacker presents a token at the honest MCP server; if it is served, the attacker
    /// keeps it (a refused one changes nothing).
    pub(crate) fn attacker_presents(w: &mut World, token: &str) {
        let header = format!("Bearer {token}");
        let result = Self::honest_mcp(w, &mcp_call(Some(&header)));
        replay::record(|| Self::mcp_observation(Role::Attacker, Target::Honest, &result));
        if result.is_ok()
            && let Some(claims) = claims_of(token)
        {
            w.audit_mut().record(Event::Served {
                by: Party::Attacker,
                claims,
            });
            w.knows().access_tokens.insert(token.to_owned());
        }
    }

    /// A token minted by the attacker's AS with the attacker's key (`kid` as the honest key's),
    /// claiming the honest issuer, the honest MCP server, alice and `client_id`.
    pub fn forged_token(now: UnixTime, client_id: &str) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
        let claims = serde_json::json!({
            "iss": HONEST_ISSUER,
            "sub": ALICE,
            "aud": HONEST_RS,
            "iat": now.as_secs(),
            "exp": now.as_secs() + 300,
            "jti": "forged",
            "client_id": client_id,
            "scope": SCOPE,
        });
        Signer::new(Ed25519Signer::from_seed("k1", [EVIL_SEED; 32]))
            .sign_json(&header, &claims)
            .expect("Ed25519 signs")
    }

    /// The `sent` key of a successful redemption.
    pub(crate) fn redeem_label(code: &str, client_id: &str, resource: Target) -> String {
        format!("redeem {code} {client_id} {resource:?}")
    }

    /// The honest session whose flow (one alice started) a code of the honest AS belongs to
    /// (ghost: by the code's PKCE challenge).
    pub(crate) fn flow_session(w: &World, code: &str) -> Option<u8> {
        let challenge = w.honest_as.code_state(code).map(|s| match s {
            CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => {
                b.challenge.as_str().to_owned()
            }
        })?;
        w.audit
            .intents
            .iter()
            .find(|i| i.challenge == challenge)
            .map(|i| i.session)
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
        Self::authorize_query(
            client_id,
            redirect,
            resource,
            Some(challenge.as_str()),
            "attacker-state",
        )
    }

    /// An authorization request's query; without `code_challenge` when `challenge` is `None`
    /// (a PKCE downgrade).
    pub fn authorize_query(
        client_id: &str,
        redirect: &str,
        resource: &str,
        challenge: Option<&str>,
        state: &str,
    ) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", state),
        ];
        if let Some(c) = challenge {
            pairs.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
        }
        pairs.extend([("resource", resource), ("scope", SCOPE)]);
        mcp_auth_proto::form::encode(pairs)
    }

    /// The attacker's entropy for one of its actions: a stream of its own, seeded from the
    /// action and how often it was used, so that independent attacker actions commute (the
    /// attacker's stream is not part of the state between actions).
    pub(crate) fn attacker_seed(w: &World, action: &Action) -> Sequential {
        // Requests that differ only in what the AS ignores must lead to the same state: the
        // label names what the answer depends on.
        let label = match action {
            Action::AttackerRedeem {
                code,
                client_id,
                redirect,
                resource,
            } => format!(
                "redeem {code} {client_id} {redirect} {resource:?}/{}",
                Self::sent(w, &Self::redeem_label(code, client_id, *resource))
            ),
            Action::AttackerRefresh { token, .. } => {
                format!("refresh {token}/{}", w.attacker.refreshes)
            }
            _ => format!("{action:?}/0"),
        };
        // FNV-1a of the label, low 16 bits left for the counter.
        let mut hash = crate::memo::Fnv1a::default();
        std::fmt::Write::write_str(&mut hash, &label).expect("hashing cannot fail");
        Sequential(hash.0 & !0xFFFF)
    }
}
