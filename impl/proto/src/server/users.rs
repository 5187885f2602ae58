//! Who may log in to the authorization server: user accounts with argon2id password hashes
//! (PHC strings), or the single demo user of a server without accounts.
//!
//! Verifying a password is pure computation, but slow on purpose (tens of milliseconds): the
//! drivers run [`LoginAttempt::verify`](super::LoginAttempt::verify) outside the lock that
//! guards the server, between [`http::prepare`](super::http::prepare) and
//! [`http::finish_login`](super::http::finish_login).

use std::collections::BTreeMap;
use std::fmt;

use argon2::{Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::types::Subject;

/// Longest accepted username, display name or password (bytes).
pub const FIELD_LEN_MAX: usize = 256;

/// Largest argon2 memory cost accepted from a users file (KiB): 256 MiB.
pub const M_COST_MAX: u32 = 256 * 1024;

/// Largest argon2 time cost accepted from a users file.
pub const T_COST_MAX: u32 = 16;

/// One account, as read from the users file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserRecord {
    /// The login name (also the `sub` of every token issued for this user).
    pub username: String,
    /// The name shown on the consent page.
    pub display_name: String,
    /// The argon2id password hash in PHC format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Why a users table was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsersError {
    /// No accounts.
    Empty,
    /// A username appears twice.
    Duplicate(String),
    /// A username is empty, too long, or has characters other than letters, digits, `.`,
    /// `_`, `-` and `@`.
    BadUsername(String),
    /// A display name is empty, too long or has control characters.
    BadDisplayName(String),
    /// The password hash is not an argon2id PHC string with bounded costs.
    BadHash(String),
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the users file names no user"),
            Self::Duplicate(u) => write!(f, "user {u:?} appears twice"),
            Self::BadUsername(u) => write!(
                f,
                "username {u:?}: use 1 to {FIELD_LEN_MAX} letters, digits, '.', '_', '-' or '@'"
            ),
            Self::BadDisplayName(u) => write!(f, "user {u:?}: bad display name"),
            Self::BadHash(u) => write!(
                f,
                "user {u:?}: the password hash must be an argon2id PHC string \
                 (make one with `mcp-auth hash-password`), m <= {M_COST_MAX} KiB, t <= {T_COST_MAX}"
            ),
        }
    }
}

impl std::error::Error for UsersError {}

fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= FIELD_LEN_MAX
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

fn valid_display_name(d: &str) -> bool {
    !d.trim().is_empty() && d.len() <= FIELD_LEN_MAX && !d.chars().any(char::is_control)
}

/// The argon2 parameters of a PHC string, if it is argon2id with bounded costs.
fn argon2id_params(phc: &str) -> Option<Params> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm.as_str() != "argon2id" || hash.salt.is_none() || hash.hash.is_none() {
        return None;
    }
    let params = Params::try_from(&hash).ok()?;
    (params.m_cost() <= M_COST_MAX && params.t_cost() <= T_COST_MAX).then_some(params)
}

/// Hash `password` with argon2id, the given costs and `salt` (at least 16 random bytes from
/// the caller: the core has no randomness of its own). For `mcp-auth hash-password` and for
/// tests that need accounts.
pub fn hash_password(
    password: &str,
    salt: &[u8],
    m_cost: u32,
    t_cost: u32,
) -> Result<String, UsersError> {
    let bad = || UsersError::BadHash(String::new());
    let params = Params::new(m_cost, t_cost, 1, None).map_err(|_| bad())?;
    let hash = Argon2::from(params)
        .hash_password_with_salt(password.as_bytes(), salt)
        .map_err(|_| bad())?;
    Ok(hash.to_string())
}

/// Does `password` match the PHC string? Constant time in the password (argon2 compares the
/// outputs in constant time); false for anything unparsable.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > FIELD_LEN_MAX || argon2id_params(phc).is_none() {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A validated table of accounts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Users {
    by_name: BTreeMap<String, UserRecord>,
    /// A hash with the first account's costs, verified for unknown usernames so that they
    /// take as long as known ones.
    dummy: String,
}

impl Users {
    /// Validate the records: unique, well-formed usernames and argon2id PHC hashes.
    pub fn new(records: impl IntoIterator<Item = UserRecord>) -> Result<Self, UsersError> {
        let mut by_name = BTreeMap::new();
        let mut first_params = None;
        for record in records {
            if !valid_username(&record.username) {
                return Err(UsersError::BadUsername(record.username));
            }
            if !valid_display_name(&record.display_name) {
                return Err(UsersError::BadDisplayName(record.username));
            }
            let Some(params) = argon2id_params(&record.password_hash) else {
                return Err(UsersError::BadHash(record.username));
            };
            first_params.get_or_insert(params);
            if by_name.contains_key(&record.username) {
                return Err(UsersError::Duplicate(record.username));
            }
            by_name.insert(record.username.clone(), record);
        }
        let params = first_params.ok_or(UsersError::Empty)?;
        // Deterministic (fixed salt, fixed password): no entropy needed, and it never matches
        // a real password because it is only ever used for names that have no account.
        let dummy = hash_password(
            "mcp-auth: no such user",
            b"mcp-auth-dummy-salt",
            params.m_cost(),
            params.t_cost(),
        )?;
        Ok(Self { by_name, dummy })
    }

    /// The account with this username.
    pub fn get(&self, username: &str) -> Option<&UserRecord> {
        self.by_name.get(username)
    }

    /// Every account.
    pub fn iter(&self) -> impl Iterator<Item = &UserRecord> {
        self.by_name.values()
    }

    /// The hash to verify a login against: the user's, or the dummy for an unknown name, so
    /// that both take the same time ([SEC-15](crate::requirements#SEC-15)).
    pub(crate) fn hash_for(&self, username: &str) -> (&str, bool) {
        match self.by_name.get(username) {
            Some(user) => (&user.password_hash, true),
            None => (&self.dummy, false),
        }
    }
}

/// Who can use the authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Accounts {
    /// One implicit user and no login page: every browser is this user (the demo, tests).
    Single(Subject),
    /// Accounts with passwords: a login page comes before consent.
    Users(Users),
}

impl Accounts {
    /// The display name of a subject.
    pub fn display_name(&self, subject: &Subject) -> String {
        match self {
            Self::Single(s) => s.0.clone(),
            Self::Users(users) => users
                .get(&subject.0)
                .map_or_else(|| subject.0.clone(), |u| u.display_name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, password: &str) -> UserRecord {
        UserRecord {
            username: name.into(),
            display_name: format!("{name} display"),
            password_hash: hash_password(password, b"0123456789abcdef", 64, 1).expect("hash"),
        }
    }

    // spec: SEC-14
    #[test]
    fn passwords_verify_against_their_phc_hash_only() {
        let r = record("alice", "correct horse");
        assert!(r.password_hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify_password("correct horse", &r.password_hash));
        assert!(!verify_password("correct horsE", &r.password_hash));
        assert!(!verify_password("", &r.password_hash));
        assert!(!verify_password(
            "correct horse",
            "$argon2i$v=19$m=64,t=1,p=1$x$y"
        ));
        assert!(!verify_password("correct horse", "plain"));
    }

    #[test]
    fn users_tables_are_validated() {
        assert_eq!(Users::new([]), Err(UsersError::Empty));
        let a = record("alice", "pw");
        assert_eq!(
            Users::new([a.clone(), a.clone()]),
            Err(UsersError::Duplicate("alice".into()))
        );
        let bad_name = UserRecord {
            username: "al ice".into(),
            ..a.clone()
        };
        assert!(matches!(
            Users::new([bad_name]),
            Err(UsersError::BadUsername(_))
        ));
        let bad_hash = UserRecord {
            password_hash: "$argon2id$v=19$m=999999999,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$AAAA".into(),
            ..a.clone()
        };
        assert!(matches!(
            Users::new([bad_hash]),
            Err(UsersError::BadHash(_))
        ));
        let users = Users::new([a, record("bob", "pw2")]).expect("valid");
        let (dummy, known) = users.hash_for("mallory");
        assert!(!known);
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!verify_password("pw", dummy));
        assert!(users.hash_for("bob").1);
    }

    #[test]
    fn debug_hides_the_hash() {
        let r = record("alice", "pw");
        assert!(!format!("{r:?}").contains("argon2id"));
    }
}
