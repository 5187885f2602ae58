//! Tables anyone can fill: a flood from one party must leave another party's flow working
//! (per-address rate limits, per-client and per-address quotas, expiry of unused clients).

use std::net::IpAddr;

use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::AuthorizationServer;
use mcp_auth_testkit::harness::{
    Harness, ISSUER, REDIRECT_URI, RESOURCE, authorize_url, form_post, query_map, redirect_query,
};
use serde_json::{Value, json};

const ATTACKER: &str = "203.0.113.7";
const VICTIM: &str = "198.51.100.20";

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn from(peer: &str, mut request: HttpRequest) -> HttpRequest {
    request.peer = ip(peer);
    request
}

fn verifier() -> CodeVerifier {
    CodeVerifier::parse(&"q".repeat(43)).unwrap()
}

fn register(h: &mut Harness, peer: &str) -> HttpResponse {
    let body = json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "client_name": "q"});
    h.route(&from(
        peer,
        HttpRequest::new(Method::Post, format!("{ISSUER}/register"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap()),
    ))
}

fn client_id(r: &HttpResponse) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["client_id"].as_str().unwrap().to_owned()
}

/// A harness whose AS has the limits `configure` sets.
fn harness(configure: impl FnOnce(&mut mcp_auth_proto::server::Limits)) -> Harness {
    let mut h = Harness::new();
    let mut config = h.authorization_server.config().clone();
    configure(&mut config.limits);
    h.authorization_server =
        AuthorizationServer::new(config, h.authorization_server.signer().clone());
    h
}

/// The victim's whole flow from its own address: register, authorize (auto-approved),
/// redeem. Returns the token response's status.
fn victims_flow(h: &mut Harness) -> u16 {
    let r = register(h, VICTIM);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = client_id(&r);
    let v = verifier();
    let page = h.route(&from(
        VICTIM,
        HttpRequest::new(Method::Get, authorize_url(&id, &v, RESOURCE, &[])),
    ));
    let Some(query) = redirect_query(&page) else {
        return page.status;
    };
    let code = query_map(&query)["code"].clone();
    h.route(&from(VICTIM, redeem(&code, &v, &id))).status
}

/// The token request redeeming `code` with `v` for client `id`.
fn redeem(code: &str, v: &CodeVerifier, id: &str) -> HttpRequest {
    form_post(
        &format!("{ISSUER}/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", v.as_str()),
            ("client_id", id),
        ],
    )
}

// spec: SEC-17
#[test]
fn a_registration_flood_from_one_address_leaves_another_address_registering() {
    let mut h = harness(|l| l.clients = 50);
    let statuses: Vec<u16> = (0..60).map(|_| register(&mut h, ATTACKER).status).collect();
    assert!(statuses[..30].iter().all(|s| *s == 201));
    let limited = register(&mut h, ATTACKER);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header_value("retry-after"), Some("60"));
    let v: Value = serde_json::from_slice(&limited.body).unwrap();
    assert_eq!(v["error"], "temporarily_unavailable");
    assert_eq!(victims_flow(&mut h), 200, "the victim's flow works");
}

// spec: SEC-17
#[test]
fn an_authorization_flood_from_one_party_leaves_another_partys_flow_working() {
    let mut h = harness(|l| l.pending = 64);
    h.user.auto_approve = false;
    let id = client_id(&register(&mut h, ATTACKER));
    let url = authorize_url(&id, &verifier(), RESOURCE, &[]);
    let statuses: Vec<u16> = (0..100)
        .map(|_| {
            h.route(&from(ATTACKER, HttpRequest::new(Method::Get, &url)))
                .status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        32,
        "32 per client"
    );
    h.user.auto_approve = true;
    assert_eq!(victims_flow(&mut h), 200, "the victim's flow works");
}

// spec: SEC-17
#[test]
fn one_address_cannot_fill_the_pending_table_with_many_clients() {
    let mut h = harness(|l| {
        l.pending = 100;
        l.rates.authorize = 0;
    });
    h.user.auto_approve = false;
    let mut shown = 0;
    for _ in 0..4 {
        let id = client_id(&register(&mut h, ATTACKER));
        let url = authorize_url(&id, &verifier(), RESOURCE, &[]);
        for _ in 0..30 {
            let r = h.route(&from(ATTACKER, HttpRequest::new(Method::Get, &url)));
            shown += usize::from(r.status == 200);
        }
    }
    assert_eq!(shown, 64, "64 per address");
    h.user.auto_approve = true;
    assert_eq!(victims_flow(&mut h), 200);
}

// spec: SEC-17
#[test]
fn clients_that_never_completed_a_flow_expire_when_the_table_is_full() {
    let mut h = harness(|l| l.clients = 2);
    assert_eq!(victims_flow(&mut h), 200, "one client completes a flow");
    assert_eq!(register(&mut h, ATTACKER).status, 201, "one never does");
    assert_eq!(register(&mut h, ATTACKER).status, 503, "the table is full");
    h.advance(3600);
    assert_eq!(
        register(&mut h, ATTACKER).status,
        201,
        "the unused one was forgotten"
    );
    assert_eq!(h.authorization_server.clients().count(), 2);
    assert!(
        h.authorization_server.clients().any(|(_, c)| c.completed),
        "the client that completed a flow stays"
    );
}

// spec: SEC-17
#[test]
fn a_client_cannot_take_the_whole_grant_table() {
    let mut h = harness(|l| l.grants_per_client = 2);
    let id = client_id(&register(&mut h, VICTIM));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let v = verifier();
        let page = h.route(&HttpRequest::new(
            Method::Get,
            authorize_url(&id, &v, RESOURCE, &[]),
        ));
        let code = query_map(&redirect_query(&page).unwrap())["code"].clone();
        statuses.push(h.route(&redeem(&code, &v, &id)).status);
    }
    assert_eq!(statuses, [200, 200, 503]);
}
