//! The transitions: what each [`Action`] does to the world.

use std::sync::Arc;

use mcp_auth_proto::client::{Action as ClientAction, Client};
use mcp_auth_proto::error::Rejection;
use mcp_auth_proto::guard;

use crate::network::mcp_call;
use crate::replay::{self, Endpoint, Observation, Role};
use crate::url::query_map;
use crate::{
    ALICE, ATTACKER_DOC, ATTACKER_REDIRECT, ATTACKER_VERIFIER, Action, AuthModel, EVIL_ISSUER,
    EVIL_RS, Event, HONEST_ISSUER, HONEST_RS, MALLORY, Party, SCOPE, Session, TICK_SECS, Target,
    Whose, World, redirect_uri,
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
                self.run_client(w, n, prm);
            }
            Action::Browse { session: n } => {
                let Some(s) = w.session(n) else { return };
                let ClientAction::OpenBrowser(url) = s.action() else {
                    return;
                };
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
                    Self::land(w, &location, Party::Session(n));
                }
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
                    Self::land(w, &location, Party::Session(0));
                }
            }
            Action::AttackerRedeem { code, resource } => {
                let Some((client_id, redirect, _)) = Self::binding(w, &code) else {
                    return;
                };
                let verifier = w
                    .attacker
                    .verifiers
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| ATTACKER_VERIFIER.to_owned());
                let ok = self.attacker_token_request(
                    w,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", &redirect),
                        ("code_verifier", &verifier),
                        ("client_id", &client_id),
                        ("resource", resource.url()),
                    ],
                );
                if ok {
                    Self::bump(w, format!("redeem {code} {resource:?}"));
                }
            }
            Action::AttackerRefresh { token } => {
                let client_id = w
                    .attacker
                    .refresh_tokens
                    .get(&token)
                    .cloned()
                    .unwrap_or_default();
                w.knows().refreshes += 1;
                self.attacker_token_request(
                    w,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                        ("client_id", &client_id),
                    ],
                );
            }
            Action::ConsentCsrf => {
                Self::bump(w, "consent-csrf".into());
                self.consent_csrf(w);
            }
            Action::Inject { session: n, code } => {
                let query =
                    mcp_auth_proto::form::encode([("code", code.as_str()), ("iss", HONEST_ISSUER)]);
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
            }
        }
    }
}
