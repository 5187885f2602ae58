//! The transitions: what each [`Action`] does to the world.

use std::sync::Arc;

use mcp_auth_proto::client::{Action as ClientAction, Client};
use mcp_auth_proto::error::Rejection;
use mcp_auth_proto::guard;

use crate::network::mcp_call;
use crate::replay::{self, Endpoint, Observation, Role};
use crate::url::query_map;
use crate::world::Intent;
use crate::{
    ALICE, ATTACKER_DOC, ATTACKER_REDIRECT, ATTACKER_VERIFIER, Action, AuthModel, EVIL_ISSUER,
    EVIL_RS, Event, HONEST_ISSUER, HONEST_RS, MALLORY, Party, SCOPE, Session, TICK_SECS, Target,
    Whose, World, claims_of, redirect_uri,
};

impl AuthModel {
    pub(crate) fn apply(&self, w: &mut World, action: Action) {
        let attacker_action = !matches!(
            action,
            Action::Connect { .. }
                | Action::Browse { .. }
                | Action::Redeem { .. }
                | Action::Call { .. }
                | Action::Refresh { .. }
                | Action::Tick
        );
        let rest = w.entropy[0].clone();
        if attacker_action {
            w.entropy[0] = Self::attacker_seed(w, &action);
        }
        self.apply_action(w, action);
        w.entropy[0] = rest;
    }

    fn apply_action(&self, w: &mut World, action: Action) {
        match action {
            Action::Connect {
                session: n,
                target,
                prm,
            } => {
                let client = Client::new(self.client_config(n, target));
                w.sessions[usize::from(n)] = Some(Arc::new(Session {
                    target,
                    client,
                    browsed: false,
                    refreshes: 0,
                    called: std::collections::BTreeSet::new(),
                }));
                let refusal = match target {
                    Target::Honest => {
                        Self::honest_mcp(w, &mcp_call(None)).expect_err("no token, no access")
                    }
                    Target::Evil => guard::challenge_response(
                        &self.evil_rs.challenge(Rejection::NoCredentials, None),
                    ),
                };
                replay::record(|| {
                    Self::mcp_observation(Role::Session(n), target, &Err::<(), _>(refusal.clone()))
                });
                let www_authenticate = refusal.header_value("www-authenticate").unwrap_or_default();
                if let Some(s) = w.session_mut(n) {
                    s.client.handle_unauthorized([www_authenticate]);
                }
                if target == Target::Evil {
                    w.audit_mut().touched.insert(n);
                }
                self.run_client(w, n, prm);
                // Client ids are public (RFC 6749 §2.2): the attacker may use the session's.
                if let Some(id) = w.client_id_of(n).map(str::to_owned) {
                    w.knows().client_ids.insert(id);
                }
            }
            Action::Browse { session: n } => {
                let Some(s) = w.session(n) else { return };
                let ClientAction::OpenBrowser(url) = s.action() else {
                    return;
                };
                let challenge = crate::url::query_value(
                    url.split_once('?').map_or("", |(_, q)| q),
                    "code_challenge",
                )
                .unwrap_or_default();
                let resource = s.target.url().to_owned();
                w.audit_mut().intents.insert(Intent {
                    session: n,
                    challenge,
                    resource,
                });
                if let Some(s) = w.session_mut(n) {
                    s.browsed = true;
                }
                let url = if url.starts_with(EVIL_ISSUER) {
                    // The attacker's AS sends the user on to the honest AS, with its own client
                    // (registered with the victims' redirect URI) and the victim's state and
                    // challenge.
                    let q = query_map(url.split_once('?').map_or("", |(_, q)| q));
                    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                    let query = mcp_auth_proto::form::encode([
                        ("response_type", "code"),
                        ("client_id", w.attacker.clients[1].as_str()),
                        ("redirect_uri", get("redirect_uri").as_str()),
                        ("state", get("state").as_str()),
                        ("code_challenge", get("code_challenge").as_str()),
                        ("code_challenge_method", "S256"),
                        ("resource", HONEST_RS),
                        ("scope", SCOPE),
                    ]);
                    w.audit_mut().record(Event::Forwarded { session: n });
                    format!("{HONEST_ISSUER}/authorize?{query}")
                } else {
                    url
                };
                if let Some(location) = self.user_agent(w, Party::Session(n), ALICE, &url) {
                    Self::land(w, &location, Party::Session(n));
                }
            }
            Action::Redeem { session: n } => {
                let Some(s) = w.session(n) else { return };
                let ClientAction::Send(request) = s.action() else {
                    return;
                };
                let form = query_map(std::str::from_utf8(&request.body).unwrap_or(""));
                if let Some(code) = form.get("code") {
                    let minter = if w.honest_as.code_state(code).is_some() {
                        Some(format!("{HONEST_ISSUER}/token"))
                    } else if w.evil_as.code_state(code).is_some() {
                        Some(format!("{EVIL_ISSUER}/token"))
                    } else {
                        None
                    };
                    w.audit_mut().record(Event::CodeSent {
                        session: n,
                        endpoint: request.url.clone(),
                        minter_endpoint: minter,
                    });
                }
                self.exchange(w, n, &request);
            }
            Action::Call { session: n, server } => Self::call(w, n, server),
            Action::Refresh { session: n } => {
                if let Some(s) = w.session_mut(n) {
                    s.refreshes += 1;
                    s.client.start_refresh();
                }
                let Some(s) = w.session(n) else { return };
                let ClientAction::Send(request) = s.action() else {
                    return;
                };
                self.exchange(w, n, &request);
            }
            Action::Tick => {
                w.ticks += 1;
                w.now = w.now.plus(TICK_SECS);
                // Time may end any flow in progress (an expired code or consent).
                let started: Vec<u8> = (0..w.sessions.len() as u8)
                    .filter(|&n| w.session(n).is_some())
                    .collect();
                w.audit_mut().touched.extend(started);
            }
            Action::AttackerAuthorize { whose } => {
                Self::bump(w, format!("{whose:?}"));
                let (client_id, redirect, resource) = match whose {
                    Whose::Own => (
                        w.attacker.clients[0].clone(),
                        ATTACKER_REDIRECT.to_owned(),
                        EVIL_RS,
                    ),
                    Whose::Victim(n) => {
                        let (Some(id), Some(s)) = (w.client_id_of(n), w.session(n)) else {
                            return;
                        };
                        (id.to_owned(), redirect_uri(n), s.target.url())
                    }
                };
                let url = Self::attacker_authorize_url(&client_id, &redirect, resource);
                if let Some(location) = self.user_agent(w, Party::Attacker, MALLORY, &url) {
                    Self::land(w, &location, Party::Attacker);
                }
            }
            Action::Lure { session: n } => {
                Self::bump(w, format!("lure{n}"));
                let (Some(id), Some(s)) = (w.client_id_of(n), w.session(n)) else {
                    return;
                };
                let url = Self::attacker_authorize_url(id, ATTACKER_REDIRECT, s.target.url());
                if let Some(location) = self.user_agent(w, Party::Attacker, ALICE, &url) {
                    w.audit_mut().touched.insert(n);
                    Self::land(w, &location, Party::Session(n));
                }
            }
            Action::Downgrade { session: n } => {
                Self::bump(w, format!("downgrade{n}"));
                let (Some(id), Some(s)) = (w.client_id_of(n), w.session(n)) else {
                    return;
                };
                let query = Self::authorize_query(
                    id,
                    &redirect_uri(n),
                    s.target.url(),
                    None,
                    "attacker-state",
                );
                let url = format!("{HONEST_ISSUER}/authorize?{query}");
                if let Some(location) = self.user_agent(w, Party::Attacker, ALICE, &url) {
                    let before = w.sessions.get(usize::from(n)).cloned().flatten();
                    Self::land(w, &location, Party::Session(n));
                    if w.sessions.get(usize::from(n)).cloned().flatten() != before {
                        w.audit_mut().touched.insert(n);
                    }
                    let query = location.split_once('?').map_or("", |(_, q)| q);
                    if let Some(code) = crate::url::query_value(query, "code")
                        && let Some(seen) = w.knows().codes.get_mut(&code)
                    {
                        seen.without_pkce = true;
                    }
                }
            }
            Action::Phish => {
                Self::bump(w, "phish".into());
                let url = Self::attacker_authorize_url(
                    &w.attacker.clients[0],
                    ATTACKER_REDIRECT,
                    EVIL_RS,
                );
                if let Some(location) = self.user_agent(w, Party::Attacker, ALICE, &url) {
                    Self::land(w, &location, Party::Attacker);
                }
            }
            Action::Steal { session: n } => {
                Self::bump(w, format!("steal{n}"));
                let Some(s) = w.session(n) else { return };
                let ClientAction::Authorized(tokens) = s.action() else {
                    return;
                };
                let Some(rt) = tokens.refresh_token.clone() else {
                    return;
                };
                let grant = claims_of(&tokens.access_token).map(|c| (c.client_id, c.aud));
                w.knows()
                    .refresh_tokens
                    .insert(rt, tokens.client_id.clone());
                let audit = w.audit_mut();
                audit.touched.insert(n);
                audit.stolen.extend(grant);
            }
            Action::Forge => {
                Self::bump(w, "forge".into());
                let Some(client_id) = w.client_id_of(0).map(str::to_owned) else {
                    return;
                };
                let token = Self::forged_token(w.now, &client_id);
                Self::attacker_presents(w, &token);
            }
            Action::DocAuthorize => {
                Self::bump(w, "doc-authorize".into());
                let url = Self::attacker_authorize_url(ATTACKER_DOC, ATTACKER_REDIRECT, HONEST_RS);
                if let Some(location) = self.user_agent(w, Party::Attacker, MALLORY, &url) {
                    Self::land(w, &location, Party::Attacker);
                }
            }
            Action::DocLure { lure } => {
                Self::bump(w, format!("{lure:?}"));
                let (client_id, redirect) = lure.request();
                let url = Self::attacker_authorize_url(client_id, &redirect, HONEST_RS);
                let location = self.user_agent(w, Party::Attacker, ALICE, &url);
                w.audit_mut().record(Event::Lured {
                    lure,
                    redirected: location.is_some(),
                });
                if let Some(location) = location {
                    w.audit_mut().touched.insert(0);
                    Self::land(w, &location, Party::Session(0));
                }
            }
            Action::AttackerRedeem {
                code,
                client_id,
                redirect,
                resource,
            } => {
                let Some(seen) = w.attacker.codes.get(&code).cloned() else {
                    return;
                };
                let verifier = w
                    .attacker
                    .verifiers
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| ATTACKER_VERIFIER.to_owned());
                let mut pairs = vec![
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("client_id", client_id.as_str()),
                    ("resource", resource.url()),
                ];
                if !seen.without_pkce {
                    pairs.push(("code_verifier", verifier.as_str()));
                }
                let before = w.honest_as.clone();
                let ok = self.attacker_token_request(w, &pairs);
                if ok {
                    Self::bump(w, Self::redeem_label(&code, &client_id, resource));
                }
                // The ghost lookup first: comparing the whole AS is the costly part.
                if let Some(n) = Self::flow_session(w, &code)
                    && *w.honest_as != *before
                {
                    w.audit_mut().touched.insert(n);
                }
            }
            Action::AttackerRefresh { token, resource } => {
                let client_id = w
                    .attacker
                    .refresh_tokens
                    .get(&token)
                    .cloned()
                    .unwrap_or_default();
                w.knows().refreshes += 1;
                let mut pairs = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", client_id.as_str()),
                ];
                if let Some(r) = resource {
                    pairs.push(("resource", r.url()));
                }
                let before = w.honest_as.clone();
                self.attacker_token_request(w, &pairs);
                if let Some(n) = w
                    .audit
                    .families
                    .get(&token)
                    .and_then(|family| Self::flow_session(w, family))
                    && *w.honest_as != *before
                {
                    w.audit_mut().touched.insert(n);
                }
            }
            Action::ConsentCsrf => {
                Self::bump(w, "consent-csrf".into());
                self.consent_csrf(w);
            }
            Action::Inject { session: n, code } => {
                let query =
                    mcp_auth_proto::form::encode([("code", code.as_str()), ("iss", HONEST_ISSUER)]);
                let before = w.sessions.get(usize::from(n)).cloned().flatten();
                if let Some(s) = w.session_mut(n) {
                    let result = s.client.handle_redirect(&query);
                    replay::record(|| Observation {
                        from: Role::Attacker,
                        to: Endpoint::Client(n),
                        request: "GET /callback".into(),
                        answer: replay::callback_answer(&result),
                        minted: replay::Minted::default(),
                    });
                }
                if w.sessions.get(usize::from(n)).cloned().flatten() != before {
                    w.audit_mut().touched.insert(n);
                }
            }
        }
    }
}
