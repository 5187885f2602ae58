//! The person at the authorization server, in memory: login, sessions, consent bound to the
//! browser and the user, no open redirection, the pages' security headers.

use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::http::UserAgentPolicy;
use mcp_auth_proto::server::users::hash_password;
use mcp_auth_proto::server::{CodeState, UserRecord, Users};
use mcp_auth_testkit::harness::{
    self, Harness, ISSUER, REDIRECT_URI, RESOURCE, authorize_url, form_post, query_map,
    redirect_query,
};

fn verifier() -> CodeVerifier {
    CodeVerifier::parse(&"v".repeat(43)).unwrap()
}

fn html(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The value of a hidden form field on a page.
fn hidden(page: &HttpResponse, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let body = html(page);
    let rest = body.split_once(&marker).expect(name).1;
    rest.split_once('"').unwrap().0.to_owned()
}

/// `name=value` of the session cookie an answer sets.
fn set_cookie(r: &HttpResponse) -> Option<String> {
    r.header_value("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

fn get(url: &str, cookie: Option<&str>) -> HttpRequest {
    let r = HttpRequest::new(Method::Get, url);
    match cookie {
        Some(c) => r.header("cookie", c),
        None => r,
    }
}

fn post(url: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> HttpRequest {
    let r = form_post(url, pairs);
    match cookie {
        Some(c) => r.header("cookie", c),
        None => r,
    }
}

/// A harness whose AS shows its pages (no auto-approval) and does not replay cookies: each
/// test plays its browsers' cookie jars itself.
fn manual() -> Harness {
    let mut h = Harness::new();
    h.user.auto_approve = false;
    h.cookie_jar = false;
    h
}

fn with_users(h: &mut Harness) {
    let record = |name: &str, display: &str, password: &str| UserRecord {
        username: name.into(),
        display_name: display.into(),
        password_hash: hash_password(password, b"0123456789abcdef", 64, 1).unwrap(),
    };
    let users = Users::new([
        record("alice", "Alice Liddell", "alice's password"),
        record("bob", "Bob", "bob's password"),
    ])
    .unwrap();
    h.user = UserAgentPolicy::users(users);
}

/// A [`manual`] harness with a registered client, and that client's authorization URL.
fn setup() -> (Harness, String) {
    let mut h = manual();
    let client_id = harness::register_client(&mut h, &[REDIRECT_URI]);
    let url = authorize_url(&client_id, &verifier(), RESOURCE, &[]);
    (h, url)
}

/// The subject of the code a redirect carries.
fn code_subject(h: &Harness, location_query: &str) -> String {
    let code = query_map(location_query)["code"].clone();
    h.authorization_server
        .code_state(&code)
        .map(|s| match s {
            CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b.subject.0.clone(),
        })
        .expect("the code is known")
}

// spec: AZ-7, AZ-8, AZ-9
#[test]
fn errors_before_the_user_is_involved_are_shown_not_redirected() {
    let mut h = manual();
    let client_id = harness::register_client(&mut h, &[REDIRECT_URI]);
    for extra in [
        &[("code_challenge", "")][..],
        &[("response_type", "token")],
        &[("scope", "mcp:nope")],
        &[("resource", "https://unknown.example/mcp")],
    ] {
        let r = h.route(&get(
            &authorize_url(&client_id, &verifier(), RESOURCE, extra),
            None,
        ));
        assert_eq!(r.status, 400, "{extra:?}");
        assert_eq!(r.header_value("location"), None, "{extra:?}: no redirect");
        let page = html(&r);
        assert!(page.contains("test"), "the page names the client");
        assert!(page.contains("127.0.0.1"), "the page names the target host");
        let link = harness::error_link_query(&r).expect("a link the user may follow");
        assert!(query_map(&link).contains_key("error"));
        assert_eq!(query_map(&link)["iss"], ISSUER);
    }
}

// spec: AZ-29
#[test]
fn a_consent_posted_from_another_browser_session_mints_nothing() {
    let (mut h, url) = setup();
    // The attacker opens an authorization for its client in its own browser...
    let page = h.route(&get(&url, None));
    assert_eq!(page.status, 200);
    let (id, csrf) = (hidden(&page, "id"), hidden(&page, "csrf"));
    // ...and makes the victim's browser (another session) post it.
    let victim = h.route(&get(&url, None));
    let victim_cookie = set_cookie(&victim).expect("the victim's session");
    let forged = h.route(&post(
        &format!("{ISSUER}/consent"),
        Some(&victim_cookie),
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    ));
    assert_eq!(forged.status, 400, "{}", html(&forged));
    assert_eq!(forged.header_value("location"), None);
    // No cookie at all: refused as well.
    let anonymous = h.route(&post(
        &format!("{ISSUER}/consent"),
        None,
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    ));
    assert_eq!(anonymous.status, 400);
    assert_eq!(h.authorization_server.codes().count(), 0, "no code minted");
}

// spec: AZ-30, AZ-19
#[test]
fn a_user_logs_in_and_the_code_is_for_that_user() {
    let (mut h, url) = setup();
    with_users(&mut h);
    let login = h.route(&get(&url, None));
    assert_eq!(login.status, 200);
    assert!(html(&login).contains("name=\"password\""), "the login page");
    let anonymous = set_cookie(&login).expect("a session before login");
    let (id, csrf) = (hidden(&login, "id"), hidden(&login, "csrf"));
    let ok = h.route(&post(
        &format!("{ISSUER}/login"),
        Some(&anonymous),
        &[
            ("id", &id),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "alice's password"),
        ],
    ));
    assert_eq!(ok.status, 303, "post, redirect, get");
    let logged_in = set_cookie(&ok).expect("a new session at login");
    assert_ne!(logged_in, anonymous, "the session id changes at login");
    let next = format!("{ISSUER}/{}", ok.header_value("location").unwrap());
    let consent = h.route(&get(&next, Some(&logged_in)));
    assert_eq!(consent.status, 200);
    assert!(html(&consent).contains("Alice Liddell"));
    // The pre-login session no longer opens it.
    assert_eq!(h.route(&get(&next, Some(&anonymous))).status, 400);
    let csrf = hidden(&consent, "csrf");
    let done = h.route(&post(
        &format!("{ISSUER}/consent"),
        Some(&logged_in),
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    ));
    assert_eq!(done.status, 303);
    let query = redirect_query(&done).unwrap();
    assert_eq!(code_subject(&h, &query), "alice");
    // The next authorization in the same browser goes straight to consent, as alice.
    let again = h.route(&get(&url, Some(&logged_in)));
    assert!(html(&again).contains("Alice Liddell"));
    assert!(!html(&again).contains("name=\"password\""));
}

// spec: SEC-14
#[test]
fn wrong_passwords_get_one_answer_and_attempts_are_bounded() {
    let (mut h, url) = setup();
    with_users(&mut h);
    let login = h.route(&get(&url, None));
    let cookie = set_cookie(&login).unwrap();
    let (id, csrf) = (hidden(&login, "id"), hidden(&login, "csrf"));
    let attempt = |h: &mut Harness, user: &str, password: &str| {
        h.route(&post(
            &format!("{ISSUER}/login"),
            Some(&cookie),
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
            ],
        ))
    };
    let unknown = attempt(&mut h, "mallory", "guess");
    let known = attempt(&mut h, "bob", "guess");
    assert_eq!((unknown.status, known.status), (200, 200));
    let message = |r: &HttpResponse| html(r).contains("Wrong username or password.");
    assert!(message(&unknown) && message(&known), "the same answer");
    assert_eq!(known.header_value("set-cookie"), None);
    // bob has 1 failure; 4 more and even the right password is refused for a while.
    for _ in 0..4 {
        attempt(&mut h, "bob", "guess");
    }
    let locked = attempt(&mut h, "bob", "bob's password");
    assert_eq!(locked.status, 429);
    assert!(html(&locked).contains("Too many failed attempts"));
    // The window passes (the pending authorization with it): a new one, and bob gets in.
    h.advance(15 * 60);
    let login = h.route(&get(&url, Some(&cookie)));
    let ok = h.route(&post(
        &format!("{ISSUER}/login"),
        Some(&cookie),
        &[
            ("id", &hidden(&login, "id")),
            ("csrf", &hidden(&login, "csrf")),
            ("username", "bob"),
            ("password", "bob's password"),
        ],
    ));
    assert_eq!(ok.status, 303);
}

// spec: AZ-29, AZ-30
#[test]
fn a_consent_shown_to_one_user_cannot_be_given_by_another() {
    let (mut h, url) = setup();
    with_users(&mut h);
    let log_in = |h: &mut Harness, user: &str, password: &str| -> (String, String, String) {
        let login = h.route(&get(&url, None));
        let cookie = set_cookie(&login).unwrap();
        let id = hidden(&login, "id");
        let ok = h.route(&post(
            &format!("{ISSUER}/login"),
            Some(&cookie),
            &[
                ("id", &id),
                ("csrf", &hidden(&login, "csrf")),
                ("username", user),
                ("password", password),
            ],
        ));
        let cookie = set_cookie(&ok).unwrap();
        let page = h.route(&get(
            &format!("{ISSUER}/{}", ok.header_value("location").unwrap()),
            Some(&cookie),
        ));
        (cookie, id, hidden(&page, "csrf"))
    };
    let (_bob, bob_id, bob_csrf) = log_in(&mut h, "bob", "bob's password");
    let (alice, _, _) = log_in(&mut h, "alice", "alice's password");
    let forged = h.route(&post(
        &format!("{ISSUER}/consent"),
        Some(&alice),
        &[
            ("id", &bob_id),
            ("csrf", &bob_csrf),
            ("decision", "approve"),
        ],
    ));
    assert_eq!(forged.status, 400);
    assert_eq!(h.authorization_server.codes().count(), 0);
}

// spec: AZ-30
#[test]
fn not_you_signs_out_and_asks_for_a_login_again() {
    let (mut h, url) = setup();
    with_users(&mut h);
    let login = h.route(&get(&url, None));
    let id = hidden(&login, "id");
    let ok = h.route(&post(
        &format!("{ISSUER}/login"),
        set_cookie(&login).as_deref(),
        &[
            ("id", &id),
            ("csrf", &hidden(&login, "csrf")),
            ("username", "alice"),
            ("password", "alice's password"),
        ],
    ));
    let alice = set_cookie(&ok).unwrap();
    let consent = h.route(&get(
        &format!("{ISSUER}/{}", ok.header_value("location").unwrap()),
        Some(&alice),
    ));
    let out = h.route(&post(
        &format!("{ISSUER}/logout"),
        Some(&alice),
        &[("id", &id), ("csrf", &hidden(&consent, "csrf"))],
    ));
    assert_eq!(out.status, 303);
    let fresh = set_cookie(&out).unwrap();
    let again = h.route(&get(
        &format!("{ISSUER}/{}", out.header_value("location").unwrap()),
        Some(&fresh),
    ));
    assert!(
        html(&again).contains("name=\"password\""),
        "the login page again"
    );
    // alice's old session is gone.
    let old = h.route(&get(&url, Some(&alice)));
    assert!(html(&old).contains("name=\"password\""));
}

// spec: AZ-26, PF-14
#[test]
fn pages_allow_the_redirect_but_no_framing_script_or_foreign_form() {
    let (mut h, url) = setup();
    let page = h.route(&get(&url, None));
    let csp = page.header_value("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:7777;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("default-src 'none'"));
    assert!(!csp.contains("script-src") && !csp.contains("unsafe-inline"));
    assert_eq!(page.header_value("x-frame-options"), Some("DENY"));
    assert!(!html(&page).contains("<script"));
    let error = h.route(&get(&format!("{ISSUER}/authorize"), None));
    let csp = error.header_value("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'none'"), "{csp}");
}

// spec: PF-15
#[test]
fn the_session_cookie_is_host_only_secure_and_not_for_scripts() {
    let (mut h, url) = setup();
    let page = h.route(&get(&url, None));
    let cookie = page.header_value("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-mcp-auth-session="), "{cookie}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Domain="));
}

// spec: SEC-15
#[test]
fn a_rebound_host_or_a_foreign_origin_is_refused() {
    let (mut h, url) = setup();
    let rebound = h.route(&get(&url, None).header("host", "evil.example"));
    assert_eq!(rebound.status, 400);
    let smuggled = h.route(
        &get(&url, None)
            .header("host", "as.example")
            .header("host", "evil.example"),
    );
    assert_eq!(smuggled.status, 400, "a second Host header is checked too");
    let same = h.route(&get(&url, None).header("host", "as.example"));
    assert_eq!(same.status, 200);
    let cookie = set_cookie(&same).unwrap();
    let foreign = h.route(
        &post(
            &format!("{ISSUER}/consent"),
            Some(&cookie),
            &[
                ("id", &hidden(&same, "id")),
                ("csrf", &hidden(&same, "csrf")),
                ("decision", "approve"),
            ],
        )
        .header("origin", "https://evil.example"),
    );
    assert_eq!(foreign.status, 400);
    let ours = h.route(
        &post(
            &format!("{ISSUER}/consent"),
            Some(&cookie),
            &[
                ("id", &hidden(&same, "id")),
                ("csrf", &hidden(&same, "csrf")),
                ("decision", "approve"),
            ],
        )
        .header("origin", ISSUER),
    );
    assert_eq!(ours.status, 303);
}

// spec: AZ-30
#[test]
fn a_login_in_one_tab_carries_the_browsers_other_authorizations_along() {
    let (mut h, url) = setup();
    with_users(&mut h);
    let tab1 = h.route(&get(&url, None));
    let cookie = set_cookie(&tab1).unwrap();
    let tab2 = h.route(&get(&url, Some(&cookie)));
    let tab2_id = hidden(&tab2, "id");
    let ok = h.route(&post(
        &format!("{ISSUER}/login"),
        Some(&cookie),
        &[
            ("id", &hidden(&tab1, "id")),
            ("csrf", &hidden(&tab1, "csrf")),
            ("username", "alice"),
            ("password", "alice's password"),
        ],
    ));
    let logged_in = set_cookie(&ok).unwrap();
    let again = h.route(&get(
        &format!("{ISSUER}/consent?id={tab2_id}"),
        Some(&logged_in),
    ));
    assert_eq!(again.status, 200);
    assert!(
        html(&again).contains("Alice Liddell"),
        "tab 2 is alice's now"
    );
    let done = h.route(&post(
        &format!("{ISSUER}/consent"),
        Some(&logged_in),
        &[
            ("id", &tab2_id),
            ("csrf", &hidden(&tab2, "csrf")),
            ("decision", "approve"),
        ],
    ));
    assert_eq!(done.status, 303);
    assert_eq!(code_subject(&h, &redirect_query(&done).unwrap()), "alice");
}
