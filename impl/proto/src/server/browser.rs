//! The user's browser at the authorization server: sessions (a cookie naming a server-side
//! record), login with bounded attempts, and the binding of every pending authorization to
//! the browser session and the user that saw it.
//!
//! A session cookie's value is a minted secret; the server keeps only its SHA-256 (a memory
//! dump reveals no usable cookie, and lookups do not compare secrets byte by byte). The
//! session is replaced by a new one at login and logout (no session fixation).

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::users::{Accounts, FIELD_LEN_MAX, verify_password};
use super::{AuthorizationServer, AuthorizeOutcome, ConsentPrompt, Pending, RecordKey};
use crate::entropy::{Entropy, mint};
use crate::error::Rejection;
use crate::time::UnixTime;
use crate::types::Subject;

/// The SHA-256 of a session cookie's value: how the server names a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key of a cookie value.
    pub fn of(cookie: &str) -> Self {
        Self(Sha256::digest(cookie.as_bytes()).into())
    }

    /// The key in lowercase hex (64 characters), for a durable store.
    pub fn to_hex(&self) -> String {
        crate::types::SecretDigest::from_bytes(self.0).to_hex()
    }

    /// A key from [`SessionKey::to_hex`]'s form; `None` unless 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        crate::types::SecretDigest::from_hex(hex).map(|d| Self(d.into_bytes()))
    }

    pub(super) fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A browser session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrowserSession {
    /// The logged-in user, once the login succeeded.
    pub subject: Option<Subject>,
    /// Creation, for the absolute lifetime.
    pub created: UnixTime,
    /// Last request, for the idle lifetime.
    pub last_seen: UnixTime,
}

/// What the request tells about the browser: its session cookie and its address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Browser {
    /// The value of the session cookie, if the request carried one.
    pub session: Option<String>,
    /// The peer address (for the per-address login limit), if the driver knows it.
    pub peer: Option<IpAddr>,
}

/// Why the login page is shown again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginError {
    /// The username or the password is wrong (the same answer for both: [SEC-14](crate::requirements#SEC-14)).
    WrongCredentials,
    /// Too many failed attempts for this user or from this address; try later.
    TooManyAttempts,
}

/// The login page for a pending authorization.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginPrompt {
    /// The consent prompt waiting behind the login (its id and csrf are the form's).
    pub prompt: ConsentPrompt,
    /// Why the page is shown again, if it is.
    pub error: Option<LoginError>,
    /// The username typed before, shown again after an error.
    pub username: Option<String>,
}

/// The outcome of a browser-facing endpoint, with the session cookie to set, if a new
/// session began.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Answer {
    /// What to show or where to go.
    pub outcome: AuthorizeOutcome,
    /// A new session's cookie value, to send in `Set-Cookie`.
    pub set_session: Option<String>,
}

impl From<AuthorizeOutcome> for Answer {
    fn from(outcome: AuthorizeOutcome) -> Self {
        Self {
            outcome,
            set_session: None,
        }
    }
}

/// A login form, checked and ready for the (slow) password verification, which the caller
/// runs outside any lock: [`LoginAttempt::verify`], then
/// [`AuthorizationServer::finish_login`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LoginAttempt {
    id: String,
    session: SessionKey,
    username: String,
    password: String,
    hash: String,
    known: bool,
    peer: Option<IpAddr>,
}

impl std::fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl LoginAttempt {
    /// Verify the password against the user's hash, or against a dummy hash with the same
    /// costs when there is no such user (the same time either way). Slow (argon2id).
    // spec: SEC-14
    pub fn verify(&self) -> bool {
        verify_password(&self.password, &self.hash) && self.known
    }
}

/// The keys the login limits count under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum ThrottleKey {
    User(String),
    Address(IpAddr),
}

impl AuthorizationServer {
    /// The live session a cookie names, if any (expired ones are forgotten).
    pub(super) fn session(&mut self, now: UnixTime, cookie: Option<&str>) -> Option<SessionKey> {
        let key = SessionKey::of(cookie?);
        let lifetimes = &self.config.lifetimes;
        let (idle, absolute) = (lifetimes.session_idle, lifetimes.session_absolute);
        let session = self.sessions.get_mut(&key)?;
        if now >= session.last_seen.plus(idle) || now >= session.created.plus(absolute) {
            self.sessions.remove(&key);
            self.touch(RecordKey::Session(key));
            return None;
        }
        if session.last_seen != now {
            session.last_seen = now;
            self.touch(RecordKey::Session(key));
        }
        Some(key)
    }

    /// Begin a session (anonymous, or logged in as `subject`). When the table is full, the
    /// expired sessions go, then the least recently seen anonymous one; logged-in sessions
    /// are never evicted (then: [`Rejection::Full`]).
    pub(super) fn begin_session(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        subject: Option<Subject>,
    ) -> Result<(String, SessionKey), Rejection> {
        if self.sessions.len() >= self.config.limits.sessions {
            let lifetimes = self.config.lifetimes.clone();
            let mut expired = Vec::new();
            self.sessions.retain(|k, s| {
                let keep = now < s.last_seen.plus(lifetimes.session_idle)
                    && now < s.created.plus(lifetimes.session_absolute);
                if !keep {
                    expired.push(*k);
                }
                keep
            });
            for k in expired {
                self.touch(RecordKey::Session(k));
            }
        }
        if self.sessions.len() >= self.config.limits.sessions {
            let oldest = self
                .sessions
                .iter()
                .filter(|(_, s)| s.subject.is_none())
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.sessions.remove(&k);
                    self.touch(RecordKey::Session(k));
                }
                None => return Err(Rejection::Full),
            }
        }
        let cookie = mint(entropy);
        let key = SessionKey::of(&cookie);
        self.sessions.insert(
            key,
            BrowserSession {
                subject,
                created: now,
                last_seen: now,
            },
        );
        self.touch(RecordKey::Session(key));
        Ok((cookie, key))
    }

    /// The user a live session is logged in as.
    pub(super) fn session_subject(&self, key: &SessionKey) -> Option<&Subject> {
        self.sessions.get(key).and_then(|s| s.subject.as_ref())
    }

    /// Sessions (for inspection).
    pub fn sessions(&self) -> impl Iterator<Item = (&SessionKey, &BrowserSession)> {
        self.sessions.iter()
    }

    /// Show the pending authorization to its browser: the login page, or the consent page for
    /// the logged-in user.
    pub(super) fn prompt_for(&self, id: &str, accounts: &Accounts) -> AuthorizeOutcome {
        let Some(pending) = self.pending.get(id) else {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        };
        match &pending.subject {
            Some(subject) => AuthorizeOutcome::Consent(ConsentPrompt {
                user: Some(accounts.display_name(subject)),
                can_logout: matches!(accounts, Accounts::Users(_)),
                ..pending.prompt.clone()
            }),
            None => AuthorizeOutcome::Login(LoginPrompt {
                prompt: pending.prompt.clone(),
                error: None,
                username: None,
            }),
        }
    }

    /// The page of a pending authorization, for the browser session it belongs to.
    pub fn show_pending(
        &mut self,
        now: UnixTime,
        accounts: &Accounts,
        browser: &Browser,
        id: &str,
    ) -> AuthorizeOutcome {
        let session = self.session(now, browser.session.as_deref());
        match self.pending.get(id) {
            Some(p) if now < p.expires_at && session.is_some_and(|k| k.ct_eq(&p.session)) => {
                self.prompt_for(id, accounts)
            }
            Some(p) if now < p.expires_at => AuthorizeOutcome::Refuse(Rejection::SessionMismatch),
            _ => AuthorizeOutcome::Refuse(Rejection::UnknownConsent),
        }
    }

    /// The pending authorization a form names, if the form's CSRF token and the browser's
    /// session both match it ([AZ-29](crate::requirements#AZ-29): a form from another browser session is refused).
    pub(super) fn pending_for_form(
        &self,
        id: &str,
        csrf: &str,
        session: Option<&SessionKey>,
    ) -> Result<&Pending, Rejection> {
        let pending = self.pending.get(id).ok_or(Rejection::UnknownConsent)?;
        if !bool::from(pending.prompt.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(Rejection::UnknownConsent);
        }
        match session {
            Some(key) if key.ct_eq(&pending.session) => Ok(pending),
            _ => Err(Rejection::SessionMismatch),
        }
    }

    fn throttled(&self, now: UnixTime, key: &ThrottleKey, limit: u32) -> bool {
        self.throttle
            .count(now, self.config.lifetimes.login_window, key)
            >= limit
    }

    fn record_failure(&mut self, now: UnixTime, key: ThrottleKey) {
        let (window, capacity) = (
            self.config.lifetimes.login_window,
            self.config.limits.throttle,
        );
        self.throttle.add(now, window, capacity, key);
    }

    fn login_page(&self, id: &str, error: Option<LoginError>, username: &str) -> AuthorizeOutcome {
        match self.pending.get(id) {
            Some(p) => AuthorizeOutcome::Login(LoginPrompt {
                prompt: p.prompt.clone(),
                error,
                username: Some(username.to_owned()),
            }),
            None => AuthorizeOutcome::Refuse(Rejection::UnknownConsent),
        }
    }

    /// Check a login form (pending authorization, CSRF token, session, attempt limits) and
    /// prepare the password verification. An `Err` is the answer to show.
    // spec: AZ-30, SEC-14
    pub fn begin_login(
        &mut self,
        now: UnixTime,
        accounts: &Accounts,
        browser: &Browser,
        form: &LoginForm,
    ) -> Result<LoginAttempt, Box<AuthorizeOutcome>> {
        let Accounts::Users(users) = accounts else {
            return Err(Box::new(AuthorizeOutcome::Refuse(
                Rejection::UnknownConsent,
            )));
        };
        let session = self.session(now, browser.session.as_deref());
        let pending = self
            .pending_for_form(&form.id, &form.csrf, session.as_ref())
            .map_err(|r| Box::new(AuthorizeOutcome::Refuse(r)))?;
        if now >= pending.expires_at {
            return Err(Box::new(AuthorizeOutcome::Refuse(
                Rejection::UnknownConsent,
            )));
        }
        let session = pending.session;
        let username = form.username.trim();
        if username.len() > FIELD_LEN_MAX || form.password.len() > FIELD_LEN_MAX {
            return Err(Box::new(self.login_page(
                &form.id,
                Some(LoginError::WrongCredentials),
                "",
            )));
        }
        let limits = &self.config.limits;
        let over_user = self.throttled(
            now,
            &ThrottleKey::User(username.to_owned()),
            limits.login_failures_per_user,
        );
        let over_address = browser.peer.is_some_and(|ip| {
            self.throttled(
                now,
                &ThrottleKey::Address(ip),
                limits.login_failures_per_address,
            )
        });
        if over_user || over_address {
            return Err(Box::new(self.login_page(
                &form.id,
                Some(LoginError::TooManyAttempts),
                username,
            )));
        }
        let (hash, known) = users.hash_for(username);
        Ok(LoginAttempt {
            id: form.id.clone(),
            session,
            username: username.to_owned(),
            password: form.password.clone(),
            hash: hash.to_owned(),
            known,
            peer: browser.peer,
        })
    }

    /// Complete a login after [`LoginAttempt::verify`]: on success the browser gets a new
    /// session logged in as the user, and the pending authorization moves to it (consent
    /// page next); on failure the attempt counts toward the limits and the login page comes
    /// back with the same message whether the user exists or not.
    // spec: AZ-30, SEC-14
    pub fn finish_login(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        attempt: LoginAttempt,
        verified: bool,
    ) -> Answer {
        // The state may have changed while the password was verified: check again.
        let still_pending = self
            .pending
            .get(&attempt.id)
            .is_some_and(|p| p.session.ct_eq(&attempt.session) && now < p.expires_at);
        if !still_pending {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent).into();
        }
        if !verified {
            self.record_failure(now, ThrottleKey::User(attempt.username.clone()));
            if let Some(ip) = attempt.peer {
                self.record_failure(now, ThrottleKey::Address(ip));
            }
            return self
                .login_page(
                    &attempt.id,
                    Some(LoginError::WrongCredentials),
                    &attempt.username,
                )
                .into();
        }
        self.throttle
            .remove(&ThrottleKey::User(attempt.username.clone()));
        let subject = Subject(attempt.username);
        self.sessions.remove(&attempt.session);
        self.touch(RecordKey::Session(attempt.session));
        let (cookie, key) = match self.begin_session(now, entropy, Some(subject.clone())) {
            Ok(v) => v,
            Err(r) => return AuthorizeOutcome::Refuse(r).into(),
        };
        // Every authorization this browser started (other tabs too) moves to the new
        // session, as this user; the one logged in for gets a fresh CSRF token.
        let csrf = mint(entropy);
        let mut moved = Vec::new();
        for (id, p) in self.pending.iter_mut() {
            if p.session.ct_eq(&attempt.session) {
                p.session = key;
                p.subject = Some(subject.clone());
                if *id == attempt.id {
                    p.prompt.csrf.clone_from(&csrf);
                }
                moved.push(id.clone());
            }
        }
        for id in moved {
            self.touch(RecordKey::Pending(id));
        }
        Answer {
            outcome: AuthorizeOutcome::ShowPending(attempt.id),
            set_session: Some(cookie),
        }
    }

    /// "Not you?": end the browser's session and show the login page again for the same
    /// pending authorization, in a new anonymous session.
    pub fn logout(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        accounts: &Accounts,
        browser: &Browser,
        id: &str,
        csrf: &str,
    ) -> Answer {
        if !matches!(accounts, Accounts::Users(_)) {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent).into();
        }
        let session = self.session(now, browser.session.as_deref());
        let old = match self.pending_for_form(id, csrf, session.as_ref()) {
            Ok(p) => p.session,
            Err(r) => return AuthorizeOutcome::Refuse(r).into(),
        };
        self.sessions.remove(&old);
        self.touch(RecordKey::Session(old));
        let (cookie, key) = match self.begin_session(now, entropy, None) {
            Ok(v) => v,
            Err(r) => return AuthorizeOutcome::Refuse(r).into(),
        };
        // Every authorization of the old session moves to the new, anonymous one.
        let csrf = mint(entropy);
        let mut moved = Vec::new();
        for (pid, p) in self.pending.iter_mut() {
            if p.session.ct_eq(&old) {
                p.session = key;
                p.subject = None;
                if pid == id {
                    p.prompt.csrf.clone_from(&csrf);
                }
                moved.push(pid.clone());
            }
        }
        for pid in moved {
            self.touch(RecordKey::Pending(pid));
        }
        Answer {
            outcome: AuthorizeOutcome::ShowPending(id.to_owned()),
            set_session: Some(cookie),
        }
    }
}

/// The fields of the login form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LoginForm {
    /// The pending authorization.
    pub id: String,
    /// Its CSRF token.
    pub csrf: String,
    /// What the user typed as username.
    pub username: String,
    /// What the user typed as password.
    pub password: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}
