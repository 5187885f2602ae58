//! Durable state (issue 13), in the core: every mutating operation reports exactly the durable
//! records it changed, with the version each replaces; a server restored from the committed
//! changes equals the original on its durable part and behaves the same; memory-only state
//! (pending consents) fails cleanly after a restart; several instances on one store see each
//! other's commits ([`AuthorizationServer::apply`]), and an instance that loses a
//! compare-and-set race reloads and runs the request again, so the core's own rules answer it:
//! a refresh token or a code used on two instances at once is a replay on the second.

use std::collections::BTreeMap;

use mcp_auth_proto::Rejection;
use mcp_auth_proto::client::Tokens;
use mcp_auth_proto::http::{HttpRequest, HttpResponse};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::ClientCredentials;
use mcp_auth_proto::server::{
    AuthorizationServer, Change, Record, RecordKey, StoredRecord, StoredUpdate, TokenRequest,
};
use mcp_auth_proto::types::SecretDigest;
use mcp_auth_testkit::harness::{
    Harness, ISSUER, REDIRECT_URI, RESOURCE, authorize_url, form_post, query_map, register_client,
};
use proptest::prelude::*;
use serde_json::Value;

/// A store as the driver's: records with versions, commits all-or-nothing with
/// compare-and-set on every change, and the log of committed updates in commit order.
#[derive(Clone, Debug, Default)]
struct Store(BTreeMap<RecordKey, (u64, String)>, Vec<StoredUpdate>);

impl Store {
    /// Apply `changes` if every one replaces the version held; else change nothing and name
    /// the records whose version differs.
    fn commit(&mut self, changes: &[Change]) -> Result<(), Vec<RecordKey>> {
        let stale: Vec<RecordKey> = changes
            .iter()
            .filter(|c| self.0.get(&c.key).map_or(0, |(v, _)| *v) != c.replaces)
            .map(|c| c.key.clone())
            .collect();
        if !stale.is_empty() {
            return Err(stale);
        }
        for c in changes {
            match c.body() {
                Some(body) => {
                    self.0.insert(c.key.clone(), (c.version, body.clone()));
                    self.1.push(StoredUpdate::Put(StoredRecord {
                        key: c.key.clone(),
                        version: c.version,
                        body,
                    }));
                }
                None => {
                    self.0.remove(&c.key);
                    self.1.push(StoredUpdate::Removed(c.key.clone()));
                }
            }
        }
        Ok(())
    }

    /// The high mark of the log (what a store's change sequence is).
    fn seq(&self) -> usize {
        self.1.len()
    }

    /// The updates committed after the high mark `seq`.
    fn since(&self, seq: usize) -> Vec<StoredUpdate> {
        self.1[seq..].to_vec()
    }

    fn load(&self) -> Vec<StoredRecord> {
        self.0
            .iter()
            .map(|(key, (version, body))| StoredRecord {
                key: key.clone(),
                version: *version,
                body: body.clone(),
            })
            .collect()
    }
}

/// A harness whose AS reports its changes, and the store holding its first changes.
fn journaled() -> (Harness, Store) {
    let mut h = Harness::new();
    let config = h.authorization_server.config().clone();
    let signer = h.authorization_server.signer().clone();
    h.authorization_server = AuthorizationServer::journaled(config, signer);
    let mut store = Store::default();
    let first = h.authorization_server.take_changes();
    assert_eq!(
        keys(&first),
        [RecordKey::Keys],
        "the key ring is stored first"
    );
    store.commit(&first).expect("an empty store");
    (h, store)
}

/// The server a restart on `store` gives.
fn restart(h: &Harness, store: &Store) -> AuthorizationServer {
    let config = h.authorization_server.config().clone();
    let signer = h.authorization_server.signer().clone();
    AuthorizationServer::restore(config, signer, store.load()).expect("restore")
}

fn keys(changes: &[Change]) -> Vec<RecordKey> {
    changes.iter().map(|c| c.key.clone()).collect()
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn refresh(h: &mut Harness, tokens: &Tokens, refresh_token: &str) -> HttpResponse {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", tokens.client_id.as_str()),
    ];
    h.route(&form_post(&format!("{ISSUER}/token"), &pairs))
}

/// The records of the durable part, encoded (what a store would hold).
fn durable(server: &AuthorizationServer) -> Vec<(RecordKey, String)> {
    server
        .durable_records()
        .into_iter()
        .map(|(k, r)| (k, r.encode()))
        .collect()
}

#[test]
fn each_operation_reports_exactly_its_changes_with_versions() {
    let (mut h, mut store) = journaled();

    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    let changes = h.authorization_server.take_changes();
    assert_eq!(
        keys(&changes),
        [RecordKey::Client(mcp_auth_proto::types::ClientId(
            client_id.clone()
        ))]
    );
    assert_eq!((changes[0].replaces, changes[0].version), (0, 1));
    assert!(matches!(changes[0].record, Some(Record::Client(ref c)) if !c.completed));
    store.commit(&changes).expect("commit");

    // Authorization and consent: the code
    let verifier = CodeVerifier::generate(&mut h.entropy);
    let url = authorize_url(&client_id, &verifier, RESOURCE, &[]);
    let query = h.browse(&url).expect("a redirect with a code");
    let code = query_map(&query)["code"].clone();
    let code_key = RecordKey::Code(SecretDigest::of(&code));
    // (and the browser's session; the pending consent came and went within the browse)
    let changes = h.authorization_server.take_changes();
    assert_eq!(changes.len(), 2, "{:?}", keys(&changes));
    assert_eq!(changes[0].key, code_key);
    assert!(matches!(changes[1].key, RecordKey::Session(_)));
    assert_eq!((changes[0].replaces, changes[0].version), (0, 1));
    store.commit(&changes).expect("commit");

    // Redeeming the code: the client (now completed), the grant, the grant sequence, the
    // code (redeemed).
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
        ("resource", RESOURCE),
    ];
    let r = h.route(&form_post(&format!("{ISSUER}/token"), &pairs));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let changes = h.authorization_server.take_changes();
    let cid = mcp_auth_proto::types::ClientId(client_id.clone());
    assert_eq!(
        keys(&changes),
        [
            RecordKey::Client(cid.clone()),
            RecordKey::Grant(0),
            RecordKey::GrantSequence,
            code_key,
        ]
    );
    let versions: Vec<_> = changes.iter().map(|c| (c.replaces, c.version)).collect();
    assert_eq!(versions, [(1, 2), (0, 1), (0, 1), (1, 2)]);
    store.commit(&changes).expect("commit");
    let tokens = Tokens {
        access_token: json(&r)["access_token"].as_str().unwrap().into(),
        refresh_token: json(&r)["refresh_token"].as_str().map(str::to_owned),
        client_id: client_id.clone(),
        ..tokens_template()
    };

    // A refused request changes nothing.
    let bad = refresh(&mut h, &tokens, "not-a-refresh-token");
    assert_eq!(json(&bad)["error"], "invalid_grant");
    assert!(h.authorization_server.take_changes().is_empty());

    // A refresh: the grant only, replacing version 1.
    let rt1 = tokens.refresh_token.clone().expect("a refresh token");
    let r = refresh(&mut h, &tokens, &rt1);
    assert_eq!(r.status, 200);
    let changes = h.authorization_server.take_changes();
    assert_eq!(keys(&changes), [RecordKey::Grant(0)]);
    assert_eq!((changes[0].replaces, changes[0].version), (1, 2));
    store.commit(&changes).expect("commit");

    // The rotated-out token again: the grant, revoked.
    let replay = refresh(&mut h, &tokens, &rt1);
    assert_eq!(json(&replay)["error"], "invalid_grant");
    let changes = h.authorization_server.take_changes();
    assert_eq!(keys(&changes), [RecordKey::Grant(0)]);
    assert!(matches!(changes[0].record, Some(Record::Grant(ref g)) if g.revoked));
    store.commit(&changes).expect("commit");
    // Replaying again changes nothing more.
    let _ = refresh(&mut h, &tokens, &rt1);
    assert!(h.authorization_server.take_changes().is_empty());
}

fn tokens_template() -> Tokens {
    serde_json::from_value(serde_json::json!({
        "access_token": "", "client_id": "", "resource": RESOURCE,
        "issuer": ISSUER, "token_endpoint": format!("{ISSUER}/token"),
    }))
    .unwrap_or_else(|e| panic!("Tokens shape: {e}"))
}

#[test]
fn a_server_without_a_journal_reports_nothing() {
    let mut h = Harness::new();
    h.drive().expect("tokens");
    assert!(!h.authorization_server.is_journaled());
    assert!(h.authorization_server.take_changes().is_empty());
}

#[test]
fn a_restart_keeps_clients_grants_and_refresh_families() {
    let (mut h, mut store) = journaled();
    let tokens = h.drive().expect("tokens");
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    let rt1 = tokens.refresh_token.clone().expect("a refresh token");
    let rt2 = json(&refresh(&mut h, &tokens, &rt1))["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");

    let restored = restart(&h, &store);
    assert_eq!(durable(&restored), durable(&h.authorization_server));
    h.authorization_server = restored;
    // The current refresh token works; the rotated-out one is a replay and revokes.
    let r = refresh(&mut h, &tokens, &rt2);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rt3 = json(&r)["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        json(&refresh(&mut h, &tokens, &rt1))["error"],
        "invalid_grant"
    );
    assert_eq!(
        json(&refresh(&mut h, &tokens, &rt3))["error"],
        "invalid_grant"
    );
    assert!(h.authorization_server.grants().all(|(_, g)| g.revoked));
}

/// A code issued before a restart is redeemed after it, once: a second redemption is a
/// replay (`invalid_grant`) and revokes the first one's grant.
// spec: TOK-6, TOK-7, PF-23
#[test]
fn a_code_from_before_a_restart_is_redeemed_once_after_it() {
    let (mut h, mut store) = journaled();
    let (client_id, code, verifier) = committed_code(&mut h, &mut store);
    h.authorization_server = restart(&h, &store);
    assert!(h.authorization_server.code_state(&code).is_some());
    let request = code_request(&client_id, &code, &verifier);
    let r = h.route(&request);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    h.authorization_server = restart(&h, &store);
    let again = h.route(&request);
    assert_eq!(
        (again.status, json(&again)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(h.authorization_server.grants().all(|(_, g)| g.revoked));
}

/// A registered client and a code issued to it (with its verifier), all committed to `store`.
fn committed_code(h: &mut Harness, store: &mut Store) -> (String, String, CodeVerifier) {
    let client_id = register_client(h, &[REDIRECT_URI]);
    let verifier = CodeVerifier::generate(&mut h.entropy);
    let query = h
        .browse(&authorize_url(&client_id, &verifier, RESOURCE, &[]))
        .expect("a code");
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    let code = query_map(&query)["code"].clone();
    (client_id, code, verifier)
}

/// The token request redeeming `code`.
fn code_request(client_id: &str, code: &str, verifier: &CodeVerifier) -> HttpRequest {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
        ("resource", RESOURCE),
    ];
    form_post(&format!("{ISSUER}/token"), &pairs)
}

/// What the driver does after its commit lost a compare-and-set race: reload the store's
/// state and run the same request again.
fn rerun(
    server: &mut AuthorizationServer,
    store: &Store,
    h: &mut Harness,
    request: &HttpRequest,
) -> HttpResponse {
    server.reload(store.load()).expect("reload");
    std::mem::swap(server, &mut h.authorization_server);
    let answer = h.route(request);
    std::mem::swap(server, &mut h.authorization_server);
    answer
}

/// Instance `server` answers `request` (the harness's own server is set aside meanwhile).
fn on(server: &mut AuthorizationServer, h: &mut Harness, request: &HttpRequest) -> HttpResponse {
    std::mem::swap(server, &mut h.authorization_server);
    let answer = h.route(request);
    std::mem::swap(server, &mut h.authorization_server);
    answer
}

/// Two instances on one store: a client registered and a code issued on `a` are known to
/// `b` once it applies the store's updates, and the code is redeemed there.
// spec: PF-23, TOK-6
#[test]
fn an_instance_applies_what_another_committed() {
    let (mut h, mut store) = journaled();
    let mut a = restart(&h, &store);
    let mut b = restart(&h, &store);
    let mark = store.seq();
    std::mem::swap(&mut a, &mut h.authorization_server);
    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    let verifier = CodeVerifier::generate(&mut h.entropy);
    let query = h
        .browse(&authorize_url(&client_id, &verifier, RESOURCE, &[]))
        .expect("a code");
    std::mem::swap(&mut a, &mut h.authorization_server);
    store.commit(&a.take_changes()).expect("commit");
    let code = query_map(&query)["code"].clone();
    assert!(b.code_state(&code).is_none(), "b has not looked yet");
    b.apply(store.since(mark)).expect("apply");
    assert!(b.take_changes().is_empty(), "applying reports nothing");
    assert_eq!(durable(&b), durable(&a));
    // Applying the same updates again changes nothing.
    b.apply(store.since(mark)).expect("apply again");
    assert_eq!(durable(&b), durable(&a));
    let mark = store.seq();
    let r = on(&mut b, &mut h, &code_request(&client_id, &code, &verifier));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    store.commit(&b.take_changes()).expect("commit");
    a.apply(store.since(mark)).expect("apply");
    assert_eq!(durable(&a), durable(&b));
    let replay = on(&mut a, &mut h, &code_request(&client_id, &code, &verifier));
    assert_eq!(json(&replay)["error"], "invalid_grant");
}

/// A code redeemed on two instances at once succeeds exactly once: the instance that loses
/// the commit runs the request again, which is then a replay (`invalid_grant`) and revokes
/// the winner's grant (TOK-7).
// spec: TOK-6, TOK-7, PF-23
#[test]
fn a_code_redeemed_on_two_instances_at_once_succeeds_once() {
    let (mut h, mut store) = journaled();
    let (client_id, code, verifier) = committed_code(&mut h, &mut store);
    let request = code_request(&client_id, &code, &verifier);
    let mut a = restart(&h, &store);
    let mut b = restart(&h, &store);
    assert_eq!(on(&mut a, &mut h, &request).status, 200);
    assert_eq!(
        on(&mut b, &mut h, &request).status,
        200,
        "b does not know yet"
    );
    store.commit(&a.take_changes()).expect("a wins");
    let lost = store.commit(&b.take_changes()).expect_err("b loses");
    assert!(
        lost.contains(&RecordKey::Code(SecretDigest::of(&code))),
        "{lost:?}"
    );
    let again = rerun(&mut b, &store, &mut h, &request);
    assert_eq!(
        (again.status, json(&again)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    store
        .commit(&b.take_changes())
        .expect("the revocation commits");
    assert!(restart(&h, &store).grants().all(|(_, g)| g.revoked));
}

/// Two grants made at once on two instances both succeed: the loser of the grant sequence
/// runs its request again and takes the next id.
// spec: PF-23
#[test]
fn two_codes_redeemed_at_once_on_two_instances_both_succeed() {
    let (mut h, mut store) = journaled();
    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    let mut requests = Vec::new();
    for _ in 0..2 {
        let verifier = CodeVerifier::generate(&mut h.entropy);
        let query = h
            .browse(&authorize_url(&client_id, &verifier, RESOURCE, &[]))
            .expect("a code");
        let code = query_map(&query)["code"].clone();
        requests.push(code_request(&client_id, &code, &verifier));
    }
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    let mut a = restart(&h, &store);
    let mut b = restart(&h, &store);
    assert_eq!(on(&mut a, &mut h, &requests[0]).status, 200);
    assert_eq!(on(&mut b, &mut h, &requests[1]).status, 200);
    store.commit(&a.take_changes()).expect("a wins");
    let lost = store.commit(&b.take_changes()).expect_err("b loses");
    assert!(lost.contains(&RecordKey::GrantSequence), "{lost:?}");
    let again = rerun(&mut b, &store, &mut h, &requests[1]);
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    store.commit(&b.take_changes()).expect("b commits");
    let ids: Vec<u64> = restart(&h, &store).grants().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 1]);
}

/// Two instances on one store refresh the same token at once: the second commit loses the
/// compare-and-set; that instance reloads and runs the request again, which is then a
/// replay of a rotated-out token: `invalid_grant` and the family revoked.
// spec: RT-2, PF-23
#[test]
fn a_lost_refresh_race_is_answered_as_a_replay() {
    let (mut h, mut store) = journaled();
    let tokens = h.drive().expect("tokens");
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    let rt = tokens.refresh_token.clone().expect("a refresh token");
    let mut a = restart(&h, &store);
    let mut b = restart(&h, &store);
    let request = TokenRequest {
        credentials: ClientCredentials {
            client_id: Some(tokens.client_id.clone()),
            ..ClientCredentials::default()
        },
        params: mcp_auth_proto::form::Params::decode(
            mcp_auth_proto::form::encode([
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .as_bytes(),
        )
        .expect("form"),
    };
    let now = h.now;
    let from_a = a.token(now, &mut h.entropy, &request).expect("a refreshes");
    let from_b = b.token(now, &mut h.entropy, &request).expect("b refreshes");
    store.commit(&a.take_changes()).expect("a wins");
    let lost = store.commit(&b.take_changes()).expect_err("b loses");
    assert_eq!(lost, [RecordKey::Grant(0)]);
    // b reloads the store's state and runs the request again.
    b.reload(store.load()).expect("reload");
    let refused = b
        .token(now, &mut h.entropy, &request)
        .expect_err("a replay now");
    assert_eq!(refused.rejection, Rejection::RefreshTokenReused);
    assert_eq!(refused.rejection.code().as_str(), "invalid_grant");
    let revocation = b.take_changes();
    assert_eq!(keys(&revocation), [RecordKey::Grant(0)]);
    assert_eq!(revocation[0].replaces, 2, "it replaces a's rotation");
    store.commit(&revocation).expect("the revocation commits");
    // Neither new refresh token works anywhere now.
    let mut c = restart(&h, &store);
    for new in [from_a.refresh_token, from_b.refresh_token] {
        let mut again = request.clone();
        again.params = mcp_auth_proto::form::Params::decode(
            mcp_auth_proto::form::encode([
                ("grant_type", "refresh_token"),
                ("refresh_token", new.as_deref().unwrap_or_default()),
            ])
            .as_bytes(),
        )
        .expect("form");
        let refused = c.token(now, &mut h.entropy, &again).expect_err("revoked");
        assert_eq!(refused.rejection.code().as_str(), "invalid_grant");
    }
}

#[test]
fn a_corrupt_record_is_refused_at_restore() {
    let (h, mut store) = journaled();
    store
        .0
        .insert(RecordKey::Grant(0), (1, "{\"client_id\":1}".into()));
    let config = h.authorization_server.config().clone();
    let signer = h.authorization_server.signer().clone();
    let e = AuthorizationServer::restore(config, signer, store.load()).expect_err("corrupt");
    assert!(e.to_string().contains("grant \"0\""), "{e}");
}

#[test]
fn another_signer_at_restore_retires_the_stored_key() {
    let (h, store) = journaled();
    let config = h.authorization_server.config().clone();
    let old = h.authorization_server.signer().clone();
    let new = mcp_auth_proto::jwt::Signer::new(mcp_auth_proto::jwt::Ed25519Signer::from_seed(
        "k2", [9; 32],
    ));
    let mut server = AuthorizationServer::restore(config, new, store.load()).expect("restore");
    let kids: Vec<_> = server
        .jwks()
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(kids, ["k2", old.kid()]);
    assert_eq!(keys(&server.take_changes()), [RecordKey::Keys]);
}

/// Two running instances with different signing keys (one restarted after `keys rotate`):
/// each publishes both keys and neither rewrites the stored ring because of the other's
/// (no ring written back and forth on every request).
// spec: PF-23
#[test]
fn instances_with_different_keys_publish_both_and_leave_the_ring_alone() {
    let (h, mut store) = journaled();
    let config = h.authorization_server.config().clone();
    let mut a = restart(&h, &store);
    let mark = store.seq();
    let new = mcp_auth_proto::jwt::Signer::new(mcp_auth_proto::jwt::Ed25519Signer::from_seed(
        "k2", [9; 32],
    ));
    let mut b = AuthorizationServer::restore(config, new, store.load()).expect("restore");
    store.commit(&b.take_changes()).expect("b's rotation");
    a.apply(store.since(mark)).expect("apply");
    let kids = |s: &AuthorizationServer| {
        let mut kids: Vec<_> = s
            .jwks()
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap_or_default())
            .collect();
        kids.sort();
        kids
    };
    assert_eq!(kids(&a), kids(&b));
    assert_eq!(kids(&a).len(), 2);
    assert!(a.take_changes().is_empty());
    a.reload(store.load()).expect("reload");
    assert!(a.take_changes().is_empty(), "a reload does not rotate");
    assert_eq!(a.signer().kid(), h.authorization_server.signer().kid());
}

/// One operation of the random sequences.
#[derive(Clone, Debug)]
enum Op {
    /// A whole flow (registration, authorization, token).
    Flow,
    /// Refresh the n-th family's current token.
    Refresh(usize),
    /// Replay the n-th family's first token.
    Replay(usize),
    /// Time passes.
    Wait(u64),
    /// Restart from the store.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Flow),
        (0usize..4).prop_map(Op::Refresh),
        (0usize..4).prop_map(Op::Replay),
        (1u64..200_000).prop_map(Op::Wait),
        Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// After any sequence of operations, each followed by a commit of its changes, a server
    /// restored from the store equals the running one on the durable part.
    #[test]
    fn restore_of_the_committed_changes_equals_the_server(ops in proptest::collection::vec(op(), 1..12)) {
        let (mut h, mut store) = journaled();
        let mut families: Vec<(Tokens, String, String)> = Vec::new();
        for op in ops {
            match op {
                Op::Flow => {
                    h.client = mcp_auth_proto::client::Client::new(
                        mcp_auth_proto::client::ClientConfig::new(RESOURCE, REDIRECT_URI),
                    );
                    if let Ok(tokens) = h.drive()
                        && let Some(rt) = tokens.refresh_token.clone()
                    {
                        families.push((tokens, rt.clone(), rt));
                    }
                }
                Op::Refresh(n) => {
                    if let Some((tokens, _, current)) = families.get_mut(n) {
                        let r = refresh(&mut h, tokens, current);
                        if let Some(rt) = json(&r)["refresh_token"].as_str() {
                            *current = rt.to_owned();
                        }
                    }
                }
                Op::Replay(n) => {
                    if let Some((tokens, first, _)) = families.get(n).cloned() {
                        let _ = refresh(&mut h, &tokens, &first);
                    }
                }
                Op::Wait(secs) => h.advance(secs),
                Op::Restart => h.authorization_server = restart(&h, &store),
            }
            let changes = h.authorization_server.take_changes();
            prop_assert!(store.commit(&changes).is_ok(), "one instance never loses a race");
            prop_assert_eq!(durable(&restart(&h, &store)), durable(&h.authorization_server));
        }
    }
}

// spec: PF-23, AZ-29
/// A consent in progress and the browser's session are durable: the consent form posted
/// after a restart (same browser, same cookie) completes the authorization; from another
/// browser (no cookie) it is still refused.
#[test]
fn a_pending_consent_from_before_a_restart_completes_after_it() {
    let (mut h, mut store) = journaled();
    h.user.auto_approve = false;
    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    store
        .commit(&h.authorization_server.take_changes())
        .expect("commit");
    let verifier = CodeVerifier::generate(&mut h.entropy);
    let page = h.route(&mcp_auth_proto::http::HttpRequest::new(
        mcp_auth_proto::http::Method::Get,
        authorize_url(&client_id, &verifier, RESOURCE, &[]),
    ));
    assert_eq!(page.status, 200);
    let changes = h.authorization_server.take_changes();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c.key, RecordKey::Pending(_)))
            && changes
                .iter()
                .any(|c| matches!(c.key, RecordKey::Session(_))),
        "{:?}",
        keys(&changes)
    );
    store.commit(&changes).expect("commit");
    let html = String::from_utf8(page.body.clone()).expect("html");
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).expect("field") + marker.len();
        html[start..start + html[start..].find('"').expect("end")].to_owned()
    };
    let (id, csrf) = (field("id"), field("csrf"));
    h.authorization_server = restart(&h, &store);
    let consent = form_post(
        &format!("{ISSUER}/consent"),
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    );
    // Another browser: no session, refused, nothing used up.
    h.cookie_jar = false;
    let stranger = h.route(&consent);
    assert_eq!(stranger.status, 400);
    assert!(stranger.header_value("location").is_none());
    // The same browser after the restart: a redirect with a code.
    h.cookie_jar = true;
    let late = h.route(&consent);
    let location = late.header_value("location").unwrap_or_default();
    assert!(
        (300..400).contains(&late.status) && location.contains("code="),
        "{} {location}",
        late.status
    );
}
