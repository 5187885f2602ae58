//! Renders `spec/requirements.md` into the documentation of `mcp_auth_proto::requirements`,
//! with an anchor on every requirement row, so that a doc comment can link to `#ID` and a
//! citation has a stable address.

use std::path::Path;

fn main() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/requirements.md");
    println!("cargo:rerun-if-changed={}", spec.display());
    let text = std::fs::read_to_string(&spec).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}", spec.display());
    });
    let mut out = String::with_capacity(text.len() + 64 * 1024);
    for line in text.lines() {
        // A requirement row: `| ID | source | level | roles | text | test idea |`.
        if let Some(rest) = line.strip_prefix("| ")
            && let Some((id, tail)) = rest.split_once(' ')
            && is_id(id)
        {
            let tail = escape_brackets(tail);
            out.push_str(&format!("| <a id=\"{id}\"></a>**{id}** {tail}\n"));
        } else if let Some(title) = line.strip_prefix("# ") {
            // The crate docs have their own title; the catalogue's becomes a subtitle.
            out.push_str(&format!("## {title}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("requirements.md");
    std::fs::write(&dest, out).expect("write the rendered catalogue");
}

/// Brackets that do not open a Markdown link (`[::1]`) are escaped, so rustdoc does not read
/// them as intra-doc links.
fn escape_brackets(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match after.find(']') {
            Some(close) if after[close + 1..].starts_with('(') => {
                out.push_str(&after[..=close]);
                rest = &after[close + 1..];
            }
            Some(close) => {
                out.push_str("\\[");
                out.push_str(&after[1..close]);
                out.push_str("\\]");
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `AZ-3`, `PKCE-11`, `A-13`: capitals, a dash, digits.
fn is_id(s: &str) -> bool {
    s.split_once('-').is_some_and(|(prefix, number)| {
        !prefix.is_empty()
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
    })
}
