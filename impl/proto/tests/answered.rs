//! What the authorization server says it answered ([`Answered`]) agrees with the response it
//! sends: the ids and CSRF tokens of the forms, the client and resource on the consent page,
//! the `Location` of every redirect, the error of an error page; and the typed entry points
//! send the very response the untyped ones send.

use mcp_auth_proto::error::Rejection;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::AuthorizeOutcome;
use mcp_auth_proto::server::http::{
    Answered, Prepared, Reply, UserAgentPolicy, finish_login, finish_login_typed, handle,
    handle_typed, prepare, prepare_typed,
};
use mcp_auth_proto::server::users::hash_password;
use mcp_auth_proto::server::{LoginPrompt, UserRecord, Users};
use mcp_auth_testkit::harness::{
    self, Harness, ISSUER, REDIRECT_URI, RESOURCE, authorize_url, form_post, query_map, split_url,
};

const PASSWORD: &str = "alice's password";

fn verifier() -> CodeVerifier {
    CodeVerifier::parse(&"v".repeat(43)).unwrap()
}

/// A harness whose AS meets the browser with `user`, with a registered client and its
/// authorization URL (`extra` as [`authorize_url`] takes it).
fn setup_with(user: UserAgentPolicy, extra: &[(&str, &str)]) -> (Harness, String) {
    let mut h = Harness::new();
    let client_id = harness::register_client(&mut h, &[REDIRECT_URI]);
    h.user = user;
    let mut pairs = vec![("scope", "mcp:tools")];
    pairs.extend_from_slice(extra);
    let url = authorize_url(&client_id, &verifier(), RESOURCE, &pairs);
    (h, url)
}

fn setup(user: UserAgentPolicy) -> (Harness, String) {
    setup_with(user, &[])
}

fn with_login() -> UserAgentPolicy {
    let alice = UserRecord {
        username: "alice".into(),
        display_name: "Alice".into(),
        password_hash: hash_password(PASSWORD, b"0123456789abcdef", 64, 1).unwrap(),
    };
    UserAgentPolicy::users(Users::new([alice]).unwrap())
}

/// Send an absolute-URL request to the AS through [`handle_typed`], with `cookie`; checks that
/// [`handle`] on a copy of the server and of the entropy sends the same response.
fn send(h: &mut Harness, request: HttpRequest, cookie: Option<&str>) -> Reply {
    let (_, path, query) = split_url(&request.url).unwrap();
    let local = HttpRequest {
        url: path,
        query,
        ..request
    };
    let local = match cookie {
        Some(c) => local.header("cookie", c),
        None => local,
    };
    let (mut server, mut entropy) = (h.authorization_server.clone(), h.entropy.clone());
    let untyped = handle(&mut server, h.now, &mut entropy, &h.user, &local);
    let reply = handle_typed(
        &mut h.authorization_server,
        h.now,
        &mut h.entropy,
        &h.user,
        &local,
    );
    assert_eq!(
        reply.response, untyped,
        "the typed answer sends the same response"
    );
    assert_eq!(server, h.authorization_server, "and leaves the same server");
    reply
}

fn get(url: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, url)
}

fn html(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The value of hidden field `name` of the form posting to `action`.
fn form_field(page: &HttpResponse, action: &str, name: &str) -> String {
    let body = html(page);
    let form = body
        .split_once(&format!("action=\"{action}\""))
        .expect(action)
        .1;
    let marker = format!("name=\"{name}\" value=\"");
    let rest = form.split_once(&marker).expect(name).1;
    rest.split_once('"').unwrap().0.to_owned()
}

/// The text of the element carrying the data attribute `attribute`.
fn data(page: &HttpResponse, attribute: &str) -> String {
    let body = html(page);
    let rest = body
        .split_once(&format!("{attribute}>"))
        .expect(attribute)
        .1;
    rest.split_once('<').unwrap().0.to_owned()
}

/// alice's login form for the login page `login`, with `password`.
fn login_post(login: &LoginPrompt, password: &str) -> HttpRequest {
    form_post(
        &format!("{ISSUER}/login"),
        &[
            ("id", &login.prompt.id),
            ("csrf", &login.prompt.csrf),
            ("username", "alice"),
            ("password", password),
        ],
    )
}

/// `name=value` of the session cookie an answer sets.
fn set_cookie(r: &HttpResponse) -> Option<String> {
    r.header_value("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

fn location(r: &HttpResponse) -> &str {
    r.header_value("location").expect("a Location")
}

#[test]
fn the_consent_page_is_rendered_from_the_prompt_it_names() {
    let (mut h, url) = setup(UserAgentPolicy::single("alice"));
    let page = send(&mut h, get(&url), None);
    let prompt = page.answered.consent().expect("the consent page");
    assert_eq!(page.response.status, 200);
    assert_eq!(prompt.id, form_field(&page.response, "consent", "id"));
    assert_eq!(prompt.csrf, form_field(&page.response, "consent", "csrf"));
    assert_eq!(prompt.client_id.0, data(&page.response, "data-client-id"));
    assert_eq!(
        prompt.resource.as_str(),
        data(&page.response, "data-resource")
    );
    assert_eq!(prompt.scopes.to_string(), "mcp:tools");
    assert!(html(&page.response).contains("<code>mcp:tools</code>"));
    assert_eq!(prompt.redirect_uri, REDIRECT_URI);
    assert!(page.answered.login().is_none() && page.answered.redirect().is_none());
}

/// The browser opens the authorization URL and posts `decision` on the consent page it is
/// shown, with the form's id and csrf as the answer names them: the answer to the form.
fn decide(h: &mut Harness, url: &str, decision: &str) -> Reply {
    let page = send(h, get(url), None);
    let cookie = set_cookie(&page.response).expect("a session");
    let prompt = page.answered.consent().expect("the consent page");
    let form = form_post(
        &format!("{ISSUER}/consent"),
        &[
            ("id", &prompt.id),
            ("csrf", &prompt.csrf),
            ("decision", decision),
        ],
    );
    send(h, form, Some(&cookie))
}

#[test]
fn an_approval_redirects_where_the_answer_says_with_its_code() {
    let (mut h, url) = setup(UserAgentPolicy::single("alice"));
    let done = decide(&mut h, &url, "approve");
    let redirect = done.answered.redirect().expect("a redirect");
    assert_eq!(done.response.status, 303);
    assert_eq!(redirect.location, location(&done.response));
    let query = query_map(location(&done.response).split_once('?').unwrap().1);
    let code = redirect.result.as_ref().expect("a code");
    assert_eq!(Some(code), query.get("code"));
    assert!(h.authorization_server.code_state(code).is_some());
    assert_eq!(redirect.state.as_deref(), Some("xyz"));
    assert!(location(&done.response).starts_with(REDIRECT_URI));
}

#[test]
fn a_denial_redirects_with_the_error_the_answer_names() {
    let (mut h, url) = setup(UserAgentPolicy::single("alice"));
    let done = decide(&mut h, &url, "deny");
    let redirect = done.answered.redirect().expect("a redirect");
    assert_eq!(redirect.location, location(&done.response));
    assert_eq!(redirect.result, Err(Rejection::UserDenied));
    let query = query_map(redirect.location.split_once('?').unwrap().1);
    assert_eq!(query["error"], Rejection::UserDenied.code().as_str());
    assert!(!query.contains_key("code"));
}

#[test]
fn login_then_the_pending_page_then_consent_agree_with_their_forms_and_locations() {
    let (mut h, url) = setup(with_login());
    let page = send(&mut h, get(&url), None);
    let login = page.answered.login().expect("the login page");
    assert_eq!(page.response.status, 200);
    assert_eq!(login.prompt.id, form_field(&page.response, "login", "id"));
    assert_eq!(
        login.prompt.csrf,
        form_field(&page.response, "login", "csrf")
    );
    assert!(page.answered.consent().is_none());
    let anonymous = set_cookie(&page.response).unwrap();
    let post = login_post(login, PASSWORD);
    let logged_in = send(&mut h, post, Some(&anonymous));
    let id = logged_in
        .answered
        .show_pending()
        .expect("post, redirect, get");
    assert_eq!(id, login.prompt.id);
    let encoded = mcp_auth_proto::form::encode([("id", id)]);
    assert_eq!(location(&logged_in.response), format!("consent?{encoded}"));
    assert!(logged_in.answered.redirect().is_none(), "not to the client");
    let cookie = set_cookie(&logged_in.response).unwrap();
    let next = format!("{ISSUER}/{}", location(&logged_in.response));
    let consent = send(&mut h, get(&next), Some(&cookie));
    let prompt = consent.answered.consent().expect("the consent page");
    assert_eq!(prompt.id, login.prompt.id);
    assert_eq!(
        prompt.csrf,
        form_field(&consent.response, "consent", "csrf")
    );
    // The "not you?" form carries the same pending authorization.
    assert_eq!(prompt.id, form_field(&consent.response, "logout", "id"));
    assert_eq!(prompt.user.as_deref(), Some("Alice"));
}

#[test]
fn a_wrong_password_shows_the_login_page_again_as_the_answer_says() {
    let (mut h, url) = setup(with_login());
    let page = send(&mut h, get(&url), None);
    let login = page.answered.login().unwrap().clone();
    let cookie = set_cookie(&page.response).unwrap();
    let post = login_post(&login, "guess");
    // Through prepare and finish_login, as the hyper driver calls them.
    let local = HttpRequest {
        url: "/login".into(),
        query: None,
        ..post
    }
    .header("cookie", cookie);
    let (mut server, mut entropy) = (h.authorization_server.clone(), h.entropy.clone());
    let Prepared::Login(untyped) = prepare(&mut server, h.now, &mut entropy, &h.user, &local)
    else {
        panic!("a login to verify");
    };
    let untyped = finish_login(&mut server, h.now, &mut entropy, untyped, false);
    let Prepared::Login(attempt) = prepare_typed(
        &mut h.authorization_server,
        h.now,
        &mut h.entropy,
        &h.user,
        &local,
    ) else {
        panic!("a login to verify");
    };
    let verified = attempt.verify();
    let again = finish_login_typed(
        &mut h.authorization_server,
        h.now,
        &mut h.entropy,
        attempt,
        verified,
    );
    assert_eq!(again.response, untyped);
    let shown = again.answered.login().expect("the login page again");
    assert!(shown.error.is_some());
    assert_eq!(shown.username.as_deref(), Some("alice"));
    assert_eq!(shown.prompt.id, login.prompt.id);
    assert_eq!(
        shown.prompt.csrf,
        form_field(&again.response, "login", "csrf")
    );
}

#[test]
fn error_pages_name_the_rejection_they_show() {
    let (mut h, url) = setup(UserAgentPolicy::single("alice"));
    let page = send(&mut h, get(&url), None);
    let cookie = set_cookie(&page.response).unwrap();
    let id = page.answered.consent().unwrap().id.clone();
    let forged = form_post(
        &format!("{ISSUER}/consent"),
        &[("id", &id), ("csrf", "forged"), ("decision", "approve")],
    );
    let refused = send(&mut h, forged, Some(&cookie));
    let want = Rejection::UnknownConsent;
    assert_eq!(
        refused.answered.outcome(),
        Some(&AuthorizeOutcome::Refuse(want))
    );
    assert_eq!(refused.response.status, want.status());
    assert!(html(&refused.response).contains(&format!("<code>{}</code>", want.code().as_str())));
    assert_eq!(refused.response.header_value("location"), None);
    // A foreign Host is refused on every route, JSON ones included, with the error page.
    let misdirected = send(
        &mut h,
        get(&format!("{ISSUER}/jwks")).header("host", "evil.example"),
        None,
    );
    assert_eq!(
        misdirected.answered.outcome(),
        Some(&AuthorizeOutcome::Refuse(Rejection::WrongHost))
    );
    assert_eq!(misdirected.response.status, Rejection::WrongHost.status());
}

#[test]
fn an_error_shown_with_a_link_back_names_the_link() {
    let (mut h, url) = setup_with(UserAgentPolicy::single("alice"), &[("scope", "mcp:nope")]);
    let page = send(&mut h, get(&url), None);
    let Some(AuthorizeOutcome::Inform(inform)) = page.answered.outcome() else {
        panic!("an error page with a link back: {:?}", page.answered);
    };
    assert_eq!(inform.redirect.result, Err(Rejection::UnknownScope));
    assert_eq!(
        Some(inform.redirect.location.clone()),
        harness::error_link(&page.response)
    );
    assert_eq!(page.answered.redirect(), None, "shown, not redirected");
}

#[test]
fn auto_approval_answers_the_redirect_not_the_page() {
    let (mut h, url) = setup(UserAgentPolicy::single("alice").auto_approving());
    let done = send(&mut h, get(&url), None);
    let redirect = done.answered.redirect().expect("approved at once");
    assert_eq!(redirect.location, location(&done.response));
    assert!(redirect.result.is_ok());
    assert!(done.answered.consent().is_none());
}

#[test]
fn answers_that_are_no_browser_page_are_other() {
    let (mut h, _) = setup(UserAgentPolicy::single("alice"));
    for request in [
        get(&format!("{ISSUER}/.well-known/oauth-authorization-server")),
        get(&format!("{ISSUER}/jwks")),
        form_post(&format!("{ISSUER}/token"), &[("grant_type", "password")]),
        get(&format!("{ISSUER}/token")),
        get(&format!("{ISSUER}/nowhere")),
    ] {
        let url = request.url.clone();
        let reply = send(&mut h, request, None);
        assert_eq!(reply.answered, Answered::Other, "{url}");
    }
}
