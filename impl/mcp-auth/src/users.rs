//! The users file of `mcp-auth serve --users FILE`.
//!
//! ```toml
//! [[users]]
//! username = "alice"
//! name = "Alice Liddell"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"   # from `mcp-auth hash-password`
//! ```

use std::path::Path;

use mcp_auth_proto::server::{UserRecord, Users};

/// Largest users file read (1 MiB).
pub const FILE_LEN_MAX: u64 = 1024 * 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    users: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    username: String,
    name: String,
    password_hash: String,
}

/// Parse a users file's text and validate the accounts.
pub fn parse(text: &str) -> Result<Users, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    Users::new(file.users.into_iter().map(|e| UserRecord {
        username: e.username,
        display_name: e.name,
        password_hash: e.password_hash,
    }))
    .map_err(|e| e.to_string())
}

/// Read and validate a users file.
pub fn load(path: &Path) -> Result<Users, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > FILE_LEN_MAX {
        return Err(format!(
            "{}: larger than {FILE_LEN_MAX} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accounts_and_refuses_unknown_fields() {
        let phc = mcp_auth_proto::server::users::hash_password("pw", b"0123456789abcdef", 64, 1)
            .expect("hash");
        let text = format!(
            "[[users]]\nusername = \"alice\"\nname = \"Alice\"\npassword_hash = \"{phc}\"\n"
        );
        let users = parse(&text).expect("valid");
        assert_eq!(
            users.get("alice").map(|u| u.display_name.as_str()),
            Some("Alice")
        );
        assert!(parse(&format!("{text}password = \"x\"\n")).is_err());
        assert!(
            parse("[[users]]\nusername = \"a\"\nname = \"A\"\npassword_hash = \"plain\"\n")
                .is_err()
        );
    }
}
