//! The user agent: the honest AS's accounts, and a user's browser (its session cookie, the
//! login and consent pages it is shown and fills in, where its redirects land). It reads the
//! pages and redirects from what the core says it answered ([`Reply::answered`]), the values
//! they were rendered from, not from their HTML or `Location`.

use mcp_auth_proto::Sequential;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::server::http::{Reply, UserAgentPolicy};
use mcp_auth_proto::server::users::hash_password;
use mcp_auth_proto::server::{UserRecord, Users};

use crate::network::form_request;
use crate::replay::{self, Endpoint, Observation, Role};
use crate::url::{query_value, split_url};
use crate::{
    ALICE, ALICE_PASSWORD, ATTACKER_REDIRECT, AuthModel, Event, MALLORY, MALLORY_PASSWORD, Party,
    SESSION_COOKIE, World, redirect_uri,
};

/// An account of the honest AS, hashed with the cheapest argon2id costs (m = 64 KiB, t = 1)
/// and a fixed salt: logins stay fast in the checker and in the replay.
pub fn user_record(username: &str, password: &str) -> UserRecord {
    let mut salt = [0_u8; 16];
    for (s, b) in salt.iter_mut().zip(username.bytes().cycle()) {
        *s = b;
    }
    UserRecord {
        username: username.to_owned(),
        display_name: username.to_owned(),
        password_hash: hash_password(password, &salt, 64, 1).expect("valid argon2 costs"),
    }
}

/// The honest AS's accounts: alice and mallory, with a login page (AZ-30).
pub fn honest_users() -> UserAgentPolicy {
    UserAgentPolicy::users(
        Users::new([
            user_record(ALICE, ALICE_PASSWORD),
            user_record(MALLORY, MALLORY_PASSWORD),
        ])
        .expect("valid accounts"),
    )
}

/// The password a browser's user types at the login page.
pub fn password_of(user: &str) -> &'static str {
    if user == MALLORY {
        MALLORY_PASSWORD
    } else {
        ALICE_PASSWORD
    }
}

impl AuthModel {
    /// A request of `user`'s browser to the honest AS: with the browser's session cookie, if
    /// it has one, keeping the one the AS sets (recorded as that browser's).
    pub(crate) fn browser_request(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        request: HttpRequest,
    ) -> Reply {
        let request = match w.cookies.get(user) {
            Some(value) => request.header("cookie", format!("{SESSION_COOKIE}={value}")),
            None => request,
        };
        let reply = self.honest_as_handle(w, entropy, &request);
        if let Some(value) = reply
            .response
            .header_value("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|pair| pair.strip_prefix(SESSION_COOKIE))
            .and_then(|rest| rest.strip_prefix('='))
        {
            w.cookies.insert(user.to_owned(), value.to_owned());
        }
        replay::record(|| {
            self.observation(
                Role::Browser(user.to_owned()),
                Endpoint::HonestAs,
                &request,
                &reply.response,
            )
        });
        reply
    }

    /// `user`'s browser opens an authorization URL at the honest AS, and logs in as `user` if
    /// the login page is shown (then follows the AS's redirect back to the pending
    /// authorization's page). Returns the page it ends on (the consent page, unless refused).
    // spec: AZ-29, AZ-30
    pub(crate) fn open_authorization(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        url: &str,
    ) -> Option<Reply> {
        let (_, path, query) = split_url(url)?;
        let get = HttpRequest {
            query,
            ..HttpRequest::new(Method::Get, path)
        };
        let page = self.browser_request(w, entropy, user, get);
        let Some(login) = page.answered.login() else {
            return Some(page);
        };
        let post = form_request(
            "/login",
            &[
                ("id", &login.prompt.id),
                ("csrf", &login.prompt.csrf),
                ("username", user),
                ("password", password_of(user)),
            ],
        );
        let answer = self.browser_request(w, entropy, user, post);
        let id = answer.answered.show_pending()?;
        let get = HttpRequest {
            query: Some(mcp_auth_proto::form::encode([("id", id)])),
            ..HttpRequest::new(Method::Get, "/consent")
        };
        Some(self.browser_request(w, entropy, user, get))
    }

    /// The redirect an answer of the honest AS sends the browser to, recording a code in it.
    pub(crate) fn redirect_of(w: &mut World, reply: &Reply) -> Option<String> {
        let redirect = reply.answered.redirect()?;
        let location = &redirect.location;
        if let Ok(code) = &redirect.result
            && let Some(client_id) = Self::binding(w, code).map(|b| b.0)
        {
            let target = location
                .split_once('?')
                .map_or(location.as_str(), |(t, _)| t);
            w.audit_mut().record(Event::CodeRedirect {
                client_id,
                target: target.to_owned(),
            });
        }
        Some(location.clone())
    }

    /// `user`'s browser opens an authorization URL at the honest AS (logging in if asked) and
    /// approves the consent page it is shown. Returns the redirect location, if any.
    pub(crate) fn user_agent(
        &self,
        w: &mut World,
        stream: Party,
        user: &str,
        url: &str,
    ) -> Option<String> {
        let mut entropy = w.stream(stream).clone();
        let location = self.user_agent_with(w, &mut entropy, user, url);
        *w.stream(stream) = entropy;
        location
    }

    fn user_agent_with(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        url: &str,
    ) -> Option<String> {
        let page = self.open_authorization(w, entropy, user, url)?;
        let reply = match page.answered.consent() {
            Some(prompt) => {
                let (client, resource) = (&prompt.client_id.0, prompt.resource.as_str());
                w.audit_mut().consents.insert((
                    user.to_owned(),
                    client.clone(),
                    resource.to_owned(),
                ));
                let post = form_request(
                    "/consent",
                    &[
                        ("id", &prompt.id),
                        ("csrf", &prompt.csrf),
                        ("decision", "approve"),
                    ],
                );
                self.browser_request(w, entropy, user, post)
            }
            None => page,
        };
        Self::redirect_of(w, &reply)
    }

    /// Where a redirect lands: an honest session's callback (read by the attacker too: A3),
    /// the attacker's redirect URI, or (for the attacker's own browser) the attacker.
    pub(crate) fn land(w: &mut World, location: &str, browser: Party) {
        let role = match browser {
            Party::Session(_) => Role::Browser(ALICE.to_owned()),
            Party::Attacker => Role::Attacker,
        };
        let (target, query) = location.split_once('?').unwrap_or((location, ""));
        if let Some(code) = query_value(query, "code") {
            let seen = crate::CodeSeen {
                redirect: target.to_owned(),
                without_pkce: false,
            };
            w.knows().codes.insert(code, seen);
        }
        if browser == Party::Attacker || target == ATTACKER_REDIRECT {
            return;
        }
        for n in 0..w.sessions.len() {
            if target == redirect_uri(n as u8)
                && let Some(session) = w.session_mut(n as u8)
            {
                let result = session.client.handle_redirect(query);
                replay::record(|| Observation {
                    from: role.clone(),
                    to: Endpoint::Client(n as u8),
                    request: "GET /callback".into(),
                    answer: replay::callback_answer(&result),
                    minted: replay::Minted::default(),
                });
            }
        }
    }
}
