//! The network: requests routed by origin to the honest and the attacker's authorization
//! servers and MCP servers (through the core's handlers), the honest AS's audit, and the honest
//! sessions' clients driven through their requests.

use std::sync::Arc;

use mcp_auth_proto::Sequential;
use mcp_auth_proto::client::Action as ClientAction;
use mcp_auth_proto::endpoint::Verdict;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::Access;
use mcp_auth_proto::metadata::ProtectedResourceMetadata;
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::http::{
    Prepared, Reply, finish_fetch_typed, finish_login_typed, handle, prepare_typed,
};
use mcp_auth_proto::server::{CodeState, FetchFailure};

use crate::replay::{self, Endpoint, Observation, RedirectTo, Role};
use crate::url::{query_values, split_url};
use crate::{
    ATTACKER_DOC, ATTACKER_LOOPBACK_DOC, ATTACKER_REDIRECT, AuthModel, CodeSeen, EVIL_ISSUER,
    Event, HONEST_DOC, HONEST_RS, IMPOSTOR_DOC, Party, Prm, Target, Via, World, claims_of,
    redirect_uri,
};

pub(crate) fn origin(url: &str) -> String {
    split_url(url).map(|(o, _, _)| o).unwrap_or_default()
}

/// An MCP `tools/list` request to the honest MCP server's path, with this `Authorization`.
pub(crate) fn mcp_call(authorization: Option<&str>) -> HttpRequest {
    let path = split_url(HONEST_RS)
        .map(|(_, path, _)| path)
        .unwrap_or_default();
    let request = HttpRequest::new(Method::Post, path)
        .header("content-type", "application/json")
        .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec());
    match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

pub(crate) fn form_request(url: &str, pairs: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode(pairs.iter().copied()))
}

/// A string entry of a JSON object body (of a repeated name, the last), as
/// `serde_json::Value::get(field)?.as_str()` reads it, without building the `Value`.
pub(crate) fn json_field(body: &[u8], field: &str) -> Option<String> {
    struct Field<'f>(&'f str);
    impl<'de> serde::de::Visitor<'de> for Field<'_> {
        type Value = Option<serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.0 {
                    found = Some(map.next_value::<serde_json::Value>()?);
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde::Deserializer::deserialize_map(&mut de, Field(field)).ok()?;
    de.end().ok()?;
    value?.as_str().map(str::to_owned)
}

impl AuthModel {
    /// Which party a URL's origin belongs to.
    pub fn endpoint_of(&self, url: &str) -> Endpoint {
        let o = origin(url);
        if o == self.honest_as_origin {
            Endpoint::HonestAs
        } else if o == self.evil_as_origin {
            Endpoint::EvilAs
        } else if o == self.honest_rs_origin {
            Endpoint::HonestRs
        } else if o == self.evil_rs_origin {
            Endpoint::EvilRs
        } else {
            Endpoint::Unknown
        }
    }

    /// Where a redirect target (a URL without query) belongs.
    pub fn redirect_to(&self, target: &str) -> RedirectTo {
        if target == ATTACKER_REDIRECT {
            return RedirectTo::Attacker;
        }
        (0..self.cfg.sessions)
            .find(|&n| target == redirect_uri(n))
            .map_or(RedirectTo::Other, RedirectTo::Session)
    }

    pub(crate) fn observation(
        &self,
        from: Role,
        to: Endpoint,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> Observation {
        Observation {
            from,
            to,
            request: replay::request_line(request.method.as_str(), &request.url),
            answer: replay::answer_of(response, |t| self.redirect_to(t)),
            minted: replay::minted_of(response),
        }
    }

    /// Deliver an HTTP request addressed by absolute URL, sent by `from` (recorded for
    /// [`replay::observe`]).
    pub(crate) fn route(
        &self,
        w: &mut World,
        from: Party,
        request: &HttpRequest,
        prm: Prm,
    ) -> HttpResponse {
        let response = self.route_inner(w, from, request, prm);
        replay::record(|| {
            self.observation(
                Role::of(from),
                self.endpoint_of(&request.url),
                request,
                &response,
            )
        });
        response
    }

    fn route_inner(
        &self,
        w: &mut World,
        from: Party,
        request: &HttpRequest,
        prm: Prm,
    ) -> HttpResponse {
        let Some((origin, path, query)) = split_url(&request.url) else {
            return HttpResponse::new(400);
        };
        let local = HttpRequest {
            url: path.clone(),
            query,
            ..request.clone()
        };
        if origin == self.honest_as_origin {
            let mut entropy = w.stream(from).clone();
            let response = self.honest_as_handle(w, &mut entropy, &local).response;
            *w.stream(from) = entropy;
            Self::audit_as(w, from, &local, &response);
            response
        } else if origin == self.evil_as_origin {
            // The attacker's AS learns every code and verifier sent to it.
            let form = std::str::from_utf8(&local.body).unwrap_or("");
            if let [Some(code), verifier, redirect] =
                query_values(form, ["code", "code_verifier", "redirect_uri"])
            {
                w.knows().codes.insert(
                    code.clone(),
                    CodeSeen {
                        redirect: redirect.unwrap_or_default(),
                        without_pkce: false,
                    },
                );
                if let Some(v) = verifier {
                    w.knows().verifiers.insert(code, v);
                }
            }
            let now = w.now;
            let mut entropy = w.stream(from).clone();
            let response = handle(
                Arc::make_mut(&mut w.evil_as),
                now,
                &mut entropy,
                &self.evil_users,
                &local,
            );
            *w.stream(from) = entropy;
            response
        } else if origin == self.honest_rs_origin {
            // Metadata (and every other request) through the MCP server's pipeline.
            match Self::honest_mcp(w, &local) {
                Ok(_) => HttpResponse::new(200),
                Err(response) => response,
            }
        } else if origin == self.evil_rs_origin {
            if local.method == Method::Get && self.evil_rs.metadata_paths().contains(&path) {
                let mut doc: ProtectedResourceMetadata = self.evil_rs.metadata();
                match prm {
                    Prm::Genuine => {}
                    Prm::EvilAs => doc.authorization_servers = vec![EVIL_ISSUER.into()],
                    Prm::Spoofed => doc.resource = HONEST_RS.into(),
                }
                return HttpResponse::json(200, &doc);
            }
            HttpResponse::new(404)
        } else {
            HttpResponse::new(404)
        }
    }

    /// A request to the honest AS, as the hyper driver runs it: [`prepare_typed`], the
    /// password verification of a login form, and the fetch of a client metadata document
    /// through the model's network ([`AuthModel::serve_document`]) handed to
    /// [`finish_fetch_typed`]. The response comes with what it is, which the user agent reads
    /// instead of the HTML or the `Location`.
    pub(crate) fn honest_as_handle(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        request: &HttpRequest,
    ) -> Reply {
        let now = w.now;
        let server = Arc::make_mut(&mut w.honest_as);
        let users = &self.honest_users;
        let (reply, fetched) = match prepare_typed(server, now, entropy, users, request) {
            Prepared::Done(reply) => (reply, None),
            Prepared::Login(attempt) => {
                let verified = attempt.verify();
                let reply = finish_login_typed(server, now, entropy, attempt, verified);
                (reply, None)
            }
            Prepared::Fetch(pending) => {
                let url = pending.fetch.request.url.clone();
                let answer = Self::serve_document(&pending.fetch.request);
                let reply = finish_fetch_typed(server, now, entropy, users, pending, answer);
                (reply, Some(url))
            }
        };
        if let Some(url) = fetched {
            w.audit_mut().record(Event::DocumentFetched { url });
        }
        reply
    }

    /// The documents the web serves: the honest client's at [`HONEST_DOC`] (its loopback
    /// redirect URI), and the attacker's at its URLs. Anything else is a 404.
    // spec: CIMD-2, CIMD-3
    pub fn serve_document(request: &HttpRequest) -> Result<HttpResponse, FetchFailure> {
        let (client_id, name, redirect) = match request.url.as_str() {
            HONEST_DOC => (HONEST_DOC, "Honest MCP Client", redirect_uri(0)),
            ATTACKER_DOC => (
                ATTACKER_DOC,
                "Totally Legit MCP Client",
                ATTACKER_REDIRECT.into(),
            ),
            ATTACKER_LOOPBACK_DOC => (
                ATTACKER_LOOPBACK_DOC,
                "Totally Legit MCP Client",
                redirect_uri(0),
            ),
            // At an attacker URL, a copy of the honest client's identity with the attacker's
            // redirect URI.
            IMPOSTOR_DOC => (HONEST_DOC, "Honest MCP Client", ATTACKER_REDIRECT.into()),
            _ => return Ok(HttpResponse::new(404)),
        };
        let doc = serde_json::json!({
            "client_id": client_id,
            "client_name": name,
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        Ok(HttpResponse::json(200, &doc))
    }

    /// Record what the honest AS did: registrations (owners) and token responses.
    fn audit_as(w: &mut World, from: Party, request: &HttpRequest, response: &HttpResponse) {
        match request.url.as_str() {
            "/register" if response.status == 201 => {
                if let Some(id) = json_field(&response.body, "client_id") {
                    w.audit_mut().owners.insert(id, from);
                }
            }
            "/token" => {
                let form = std::str::from_utf8(&request.body).unwrap_or("");
                let via = match query_values(form, ["grant_type", "code", "refresh_token"]) {
                    [Some(grant), Some(code), _] if grant == "authorization_code" => {
                        Via::Code(code)
                    }
                    [Some(grant), _, Some(rt)] if grant == "refresh_token" => Via::Refresh(rt),
                    _ => return,
                };
                // A code or refresh token that already yielded a token is reused when it comes
                // back as its holder would send it (its client, redirect URI, verifier and
                // resource: ground truth from the code's binding) or is accepted again. A
                // presentation with other values shows no theft (and must not revoke: TOK-9).
                let family = match &via {
                    Via::Code(code) => w.audit.redeemed.contains(code).then(|| code.clone()),
                    Via::Refresh(rt) => w
                        .audit
                        .refreshed
                        .contains(rt)
                        .then(|| w.audit.families.get(rt).cloned().unwrap_or_default()),
                };
                let reused = family.filter(|family| {
                    response.status == 200 || Self::as_its_holder(w, family, &via, form)
                });
                if let Some(family) = reused {
                    let reused = Event::Reused { family };
                    // Copy the audit only if the event is new.
                    if !w.audit.events.contains(&reused) {
                        w.audit_mut().record(reused);
                    }
                }
                if response.status != 200 {
                    return;
                }
                let access = json_field(&response.body, "access_token").unwrap_or_default();
                let refresh = json_field(&response.body, "refresh_token");
                let Some(claims) = claims_of(&access) else {
                    return;
                };
                if let Via::Code(code) = &via
                    && !Self::bound_to_request(w, code, form)
                {
                    w.audit_mut().record(Event::Unbound { code: code.clone() });
                }
                let family = match &via {
                    Via::Code(code) => {
                        w.audit_mut().redeemed.insert(code.clone());
                        code.clone()
                    }
                    Via::Refresh(rt) => {
                        w.audit_mut().refreshed.insert(rt.clone());
                        w.audit.families.get(rt).cloned().unwrap_or_default()
                    }
                };
                let after_replay = w.audit.events.contains(&Event::Reused {
                    family: family.clone(),
                });
                if let Some(new) = &refresh {
                    w.audit_mut().families.insert(new.clone(), family);
                }
                w.audit_mut().record(Event::Issued {
                    to: from,
                    via,
                    claims,
                    refresh,
                    after_replay,
                });
            }
            _ => {}
        }
    }

    /// A token request presents a used code or refresh token (of the grant started by the
    /// code `family`) with the values its holder would send: the grant's client, and for a
    /// code, before it expires, its redirect URI and PKCE verifier; the resource, if named,
    /// the grant's.
    fn as_its_holder(w: &World, family: &str, via: &Via, form: &str) -> bool {
        let Some(binding) = w.honest_as.code_state(family).map(|s| match s {
            CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b.clone(),
        }) else {
            return false;
        };
        let [client_id, redirect, verifier, resource] = query_values(
            form,
            ["client_id", "redirect_uri", "code_verifier", "resource"],
        );
        let client = client_id.as_deref() == Some(binding.client_id.0.as_str());
        let resource = resource.is_none_or(|r| r == binding.resource.as_str());
        match via {
            Via::Refresh(_) => client && resource,
            Via::Code(_) => {
                let challenge = verifier
                    .as_deref()
                    .and_then(|v| CodeVerifier::parse(v).ok())
                    .map(|v| v.challenge().as_str().to_owned());
                // Within the code's lifetime: the AS keeps a redeemed code (and can see it
                // come back) only until it expires (TOK-8).
                w.now < binding.expires_at
                    && client
                    && resource
                    && redirect.as_deref() == Some(binding.redirect_uri.as_str())
                    && challenge.as_deref() == Some(binding.challenge.as_str())
            }
        }
    }

    /// A code was redeemed by the client it was issued to, with the redirect URI it was
    /// issued for (TOK-5, TOK-10; ground truth from the binding).
    fn bound_to_request(w: &World, code: &str, form: &str) -> bool {
        let [client_id, redirect] = query_values(form, ["client_id", "redirect_uri"]);
        w.honest_as.code_state(code).is_none_or(|s| {
            let b = match s {
                CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b,
            };
            client_id.as_deref() == Some(b.client_id.0.as_str())
                && redirect.as_deref() == Some(b.redirect_uri.as_str())
        })
    }

    /// Run a session's client through every `Send` (discovery, registration) until it needs the
    /// browser or is done.
    pub(crate) fn run_client(&self, w: &mut World, n: u8, prm: Prm) {
        for _ in 0..16 {
            let Some(session) = w.session(n) else { return };
            let asked = session.target.url();
            let ClientAction::Send(request) = session.action() else {
                return;
            };
            let response = self.route(w, Party::Session(n), &request, prm);
            let now = w.now;
            let mut entropy = w.stream(Party::Session(n)).clone();
            let Some(session) = w.session_mut(n) else {
                return;
            };
            session.client.handle_response(now, &mut entropy, &response);
            let next = session.action();
            *w.stream(Party::Session(n)) = entropy;
            if request
                .url
                .contains("/.well-known/oauth-protected-resource")
                && response.status == 200
                && let ClientAction::Send(next) = next
            {
                let doc: ProtectedResourceMetadata =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                w.audit_mut().record(Event::PrmAccepted {
                    session: n,
                    asked: asked.to_owned(),
                    resource: doc.resource,
                    servers: doc.authorization_servers,
                    next: next.url,
                });
            }
        }
    }

    /// A request to the honest MCP server, through [`McpGuard`]'s whole pipeline (origin,
    /// token, body, protocol version, tool scopes, session owner), as the tower layer runs it:
    /// the validated token, or the server's answer. Runs on a copy of the guard, so that its
    /// verified-token cache does not become part of the state (see [`World::rs`]).
    ///
    /// [`McpGuard`]: mcp_auth_proto::endpoint::McpGuard
    pub(crate) fn honest_mcp(w: &World, request: &HttpRequest) -> Result<Access, HttpResponse> {
        let mut guard = (*w.rs).clone();
        match guard.handle_request(w.now, request) {
            Verdict::Respond(response) | Verdict::FetchKeys(response) => Err(response),
            Verdict::ReadBody(admitted) => guard
                .handle_body(admitted, &request.body)
                .map(|forward| forward.access),
            // Not configured in the model.
            Verdict::Introspect(_) => Err(HttpResponse::new(503)),
        }
    }

    /// An MCP request (with or without a token) and the server's answer.
    pub(crate) fn mcp_observation<T>(
        from: Role,
        server: Target,
        result: &Result<T, HttpResponse>,
    ) -> Observation {
        Observation {
            from,
            to: match server {
                Target::Honest => Endpoint::HonestRs,
                Target::Evil => Endpoint::EvilRs,
            },
            request: replay::request_line("POST", server.url()),
            answer: replay::authentication_answer(result),
            minted: replay::Minted::default(),
        }
    }

    /// Session `n` calls `server` with whatever its client attaches.
    pub(crate) fn call(w: &mut World, n: u8, server: Target) {
        let Some(s) = w.session(n) else { return };
        let Some(header) = s.client.authorization_for(server.url()) else {
            return;
        };
        let token = header
            .strip_prefix("Bearer ")
            .unwrap_or_default()
            .to_owned();
        if let Some(s) = w.session_mut(n) {
            s.called.insert((server, token.clone()));
        }
        if let Some(claims) = claims_of(&token) {
            w.audit_mut().record(Event::Presented {
                session: n,
                server,
                claims,
            });
        }
        match server {
            Target::Honest => {
                let result = Self::honest_mcp(w, &mcp_call(Some(&header)));
                replay::record(|| Self::mcp_observation(Role::Session(n), server, &result));
                if result.is_ok()
                    && let Some(claims) = claims_of(&token)
                {
                    w.audit_mut().record(Event::Served {
                        by: Party::Session(n),
                        claims,
                    });
                }
            }
            Target::Evil => {
                // The malicious server takes whatever it is sent.
                replay::record(|| {
                    Self::mcp_observation(Role::Session(n), server, &Ok::<(), _>(()))
                });
                Self::attacker_learns_token(w, token);
            }
        }
    }

    /// Deliver session `n`'s pending request to the AS; once authorized, it calls its server.
    pub(crate) fn exchange(&self, w: &mut World, n: u8, request: &HttpRequest) {
        let response = self.route(w, Party::Session(n), request, Prm::Genuine);
        let now = w.now;
        let mut entropy = w.stream(Party::Session(n)).clone();
        let mut target = None;
        if let Some(s) = w.session_mut(n) {
            s.client.handle_response(now, &mut entropy, &response);
            if matches!(s.action(), ClientAction::Authorized(_)) {
                target = Some(s.target);
            }
        }
        *w.stream(Party::Session(n)) = entropy;
        if let Some(target) = target {
            Self::call(w, n, target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_field;

    #[test]
    fn json_field_reads_as_value_get() {
        for body in [
            r#"{"a":"x","b":1}"#,
            r#"{"a":1,"b":"y"}"#,
            r#"{"a":"x","a":"z"}"#,
            r#"{"a":"x","a":2}"#,
            r#"{"b":{"a":"n"},"c":["a"]}"#,
            r#"{"a":"x"} trailing"#,
            r#"["a"]"#,
            r#"{"a\u0062":"e","ab":"f"}"#,
            "",
        ] {
            let value: Option<serde_json::Value> = serde_json::from_slice(body.as_bytes()).ok();
            for field in ["a", "b", "ab"] {
                let expected = value
                    .as_ref()
                    .and_then(|v| v.get(field)?.as_str().map(str::to_owned));
                assert_eq!(
                    json_field(body.as_bytes(), field),
                    expected,
                    "{body} {field}"
                );
            }
        }
    }
}
