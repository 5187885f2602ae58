//! Traceability between `spec/requirements.md` and the tests (see `spec/README.md`).
//!
//! A requirement row is covered when a test function (`#[test]`, a `proptest!` case,
//! `#[tokio::test]`) or a model property cites its ID in its own citation: a `// spec:` comment
//! in the comment and attribute block directly above the function, or on an assert line of its
//! body. Citations anywhere else (file level, helpers, production code, strings) only document;
//! they are checked for validity and never cover. A test or property may cite at most
//! `MAX_IDS_PER_TEST` IDs. N/A rows are reported apart. The test fails on an unknown ID, on a test
//! citing too many IDs, and on a MUST or MUST NOT row of the AS, the RS or the client that is
//! neither covered nor N/A.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most IDs one test function or model property may cite.
const MAX_IDS_PER_TEST: usize = 5;
/// The roles a row can bind; `all` stands for the three.
const ROLES: [&str; 3] = ["AS", "RS", "client"];
/// The levels reported, in order.
const LEVELS: [&str; 4] = ["MUST", "MUST NOT", "SHOULD", "SHOULD NOT"];
/// The MCP revisions a row can belong to; `all` stands for the three.
const REVISIONS: [&str; 3] = ["2025-06-18", "2025-11-25", "2026-07-28"];
/// This file: its own text never cites.
const SELF: &str = "impl/proto/tests/traceability.rs";

struct Row {
    source: String,
    level: String,
    roles: BTreeSet<String>,
    /// The MCP revisions the row belongs to.
    revisions: BTreeSet<String>,
    /// `Some(reason)` when the how-verified cell starts with `N/A:`.
    na: Option<String>,
    /// `Some(pattern)` for an umbrella row (how-verified cell ``umbrella: ... `pattern` ...``):
    /// covered when every other MUST and MUST NOT row whose source contains the pattern is.
    umbrella: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_id(s: &str) -> bool {
    let Some((group, n)) = s.split_once('-') else {
        return false;
    };
    !group.is_empty()
        && group.bytes().all(|b| b.is_ascii_uppercase())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// Every ID of the catalogue (requirement rows, profile decisions, ambiguities), and the
/// requirement rows themselves.
fn catalogue() -> (BTreeSet<String>, BTreeMap<String, Row>) {
    let text =
        std::fs::read_to_string(root().join("spec/requirements.md")).expect("spec/requirements.md");
    let mut ids = BTreeSet::new();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(id) = cells.first().filter(|c| is_id(c)) else {
            continue;
        };
        assert!(
            ids.insert(id.to_string()),
            "{id} appears twice in the catalogue"
        );
        if cells.len() == 7 {
            let level = cells[2].to_string();
            assert!(
                [
                    "MUST",
                    "MUST NOT",
                    "SHOULD",
                    "SHOULD NOT",
                    "MAY",
                    "informative"
                ]
                .contains(&level.as_str()),
                "{id}: bad level {level}"
            );
            let mut roles = BTreeSet::new();
            for role in cells[3].split(',').map(str::trim) {
                match role {
                    "all" => roles.extend(ROLES.iter().map(|r| r.to_string())),
                    r if ROLES.contains(&r) => {
                        roles.insert(r.to_string());
                    }
                    r => panic!("{id}: bad role {r}"),
                }
            }
            let mut revisions = BTreeSet::new();
            for revision in cells[4].split(',').map(str::trim) {
                match revision {
                    "all" => revisions.extend(REVISIONS.iter().map(|r| r.to_string())),
                    r if REVISIONS.contains(&r) => {
                        revisions.insert(r.to_string());
                    }
                    r => panic!("{id}: bad revision {r}"),
                }
            }
            let na = cells[6]
                .strip_prefix("N/A:")
                .map(|reason| reason.trim().to_string());
            let umbrella = cells[6]
                .strip_prefix("umbrella:")
                .and_then(|rest| rest.split('`').nth(1))
                .map(str::to_owned);
            rows.insert(
                id.to_string(),
                Row {
                    source: cells[1].to_string(),
                    level,
                    roles,
                    revisions,
                    na,
                    umbrella,
                },
            );
        } else {
            assert!(
                id.starts_with("PF-") || id.starts_with("A-"),
                "{id}: a requirement row has exactly seven cells"
            );
        }
    }
    (ids, rows)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.')
                && !name.starts_with("target")
                && name != "corpus"
                && name != "artifacts"
            {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// One source line, split by a small lexer: the code with string and char literals blanked, the
/// text of a `//` line comment (without the slashes), and the string literals that end here.
#[derive(Default)]
struct Line {
    code: String,
    comment: Option<String>,
    strings: Vec<String>,
}

fn lex(text: &str) -> Vec<Line> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = vec![Line::default()];
    let mut i = 0;
    let mut block_depth = 0usize;
    let newline = |lines: &mut Vec<Line>| lines.push(Line::default());
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            newline(&mut lines);
            i += 1;
        } else if block_depth > 0 {
            if c == '*' && next == Some('/') {
                block_depth -= 1;
                i += 2;
            } else if c == '/' && next == Some('*') {
                block_depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            block_depth = 1;
            i += 2;
        } else if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            let comment: String = chars[i + 2..end].iter().collect();
            lines.last_mut().unwrap().comment = Some(comment);
            i = end;
        } else if c == '"' || ((c == 'r' || c == 'b') && starts_raw_or_byte_string(&chars, i)) {
            // A string literal, possibly raw (r#"..."#) or byte (b"...", br"...").
            let mut j = i;
            if chars[j] == 'b' {
                j += 1;
            }
            let mut hashes = None;
            if chars[j] == 'r' {
                j += 1;
                let mut n = 0;
                while chars.get(j) == Some(&'#') {
                    n += 1;
                    j += 1;
                }
                hashes = Some(n);
            }
            debug_assert_eq!(chars.get(j), Some(&'"'));
            j += 1;
            let mut content = String::new();
            while let Some(&d) = chars.get(j) {
                if d == '\n' {
                    newline(&mut lines);
                    content.push(d);
                    j += 1;
                } else if hashes.is_none() && d == '\\' {
                    content.push(d);
                    if let Some(&e) = chars.get(j + 1) {
                        if e == '\n' {
                            newline(&mut lines);
                        }
                        content.push(e);
                    }
                    j += 2;
                } else if d == '"'
                    && (0..hashes.unwrap_or(0)).all(|k| chars.get(j + 1 + k) == Some(&'#'))
                {
                    j += 1 + hashes.unwrap_or(0);
                    break;
                } else {
                    content.push(d);
                    j += 1;
                }
            }
            let line = lines.last_mut().unwrap();
            line.code.push_str("\"\"");
            line.strings.push(content);
            i = j;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if next == Some('\\') {
                chars[(i + 3).min(chars.len())..]
                    .iter()
                    .take(12)
                    .position(|&c| c == '\'')
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    lines.last_mut().unwrap().code.push_str("' '");
                    i = end + 1;
                }
                None => {
                    lines.last_mut().unwrap().code.push(c);
                    i += 1;
                }
            }
        } else {
            if c.is_alphanumeric() || c == '_' {
                // Copy a whole identifier, so that the r of `for` is not read as a raw string.
                let end = chars[i..]
                    .iter()
                    .position(|&c| !(c.is_alphanumeric() || c == '_'))
                    .map_or(chars.len(), |p| i + p);
                let ident: String = chars[i..end].iter().collect();
                lines.last_mut().unwrap().code.push_str(&ident);
                i = end;
                continue;
            }
            lines.last_mut().unwrap().code.push(c);
            i += 1;
        }
    }
    lines
}

/// Whether `chars[i..]` starts a raw or byte string literal (r"", r#"", b"", br"", br#"").
fn starts_raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
        if chars.get(j) == Some(&'"') {
            return true;
        }
    }
    if chars.get(j) != Some(&'r') {
        return false;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// The IDs of a `// spec: ID, ID` comment.
fn spec_ids(comment: &str) -> Option<Vec<String>> {
    let rest = comment.trim_start().strip_prefix("spec:")?;
    Some(
        rest.split(',')
            .map(|part| {
                part.trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
            })
            .filter(|id| !id.is_empty())
            .collect(),
    )
}

fn is_attribute(code: &str) -> bool {
    let code = code.trim();
    code.starts_with("#[") || code.starts_with("#![")
}

fn mentions_assert(code: &str) -> bool {
    code.contains("assert")
}

/// A test function or a model property, and the IDs its own citation names.
struct Citer {
    place: String,
    ids: BTreeSet<String>,
}

/// The index of the line holding `fn`, from an attribute line, and the body's line range.
fn function_after(lines: &[Line], start: usize) -> Option<(usize, usize, usize)> {
    let fn_line = (start..lines.len().min(start + 20)).find(|&k| {
        let code = lines[k].code.trim_start();
        !is_attribute(code)
            && (code.starts_with("fn ")
                || code.starts_with("async fn ")
                || code.starts_with("pub fn ")
                || code.starts_with("pub async fn "))
    })?;
    // The body opens at the first `{` outside parentheses after `fn`, and closes when the brace
    // depth returns to zero.
    let mut parens = 0i32;
    let mut depth = 0i32;
    let mut open = None;
    for (k, line) in lines.iter().enumerate().skip(fn_line) {
        for c in line.code.chars() {
            match c {
                '(' | '[' => parens += 1,
                ')' | ']' => parens -= 1,
                '{' if parens == 0 || open.is_some() => {
                    if open.is_none() {
                        open = Some(k);
                    }
                    depth += 1;
                }
                '{' => {}
                '}' if open.is_some() => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((fn_line, open.unwrap(), k));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// The citations in the comment and attribute block directly above line `top` (no blank line
/// and no code in between).
fn citations_above(lines: &[Line], top: usize) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut used = Vec::new();
    let mut k = top;
    while k > 0 {
        k -= 1;
        let line = &lines[k];
        let code = line.code.trim();
        if !code.is_empty() && !is_attribute(code) {
            break;
        }
        if code.is_empty() && line.comment.is_none() {
            break; // a blank line ends the block
        }
        if let Some(found) = line.comment.as_deref().and_then(spec_ids) {
            ids.extend(found);
            used.push(k);
        }
    }
    (ids, used)
}

/// The citations on assert lines of a body: a `// spec:` comment on a line whose code asserts,
/// or on a line of its own directly followed by one that starts an assertion.
fn citations_on_asserts(lines: &[Line], open: usize, close: usize) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut used = Vec::new();
    for k in open..=close {
        let Some(found) = lines[k].comment.as_deref().and_then(spec_ids) else {
            continue;
        };
        let asserting = if lines[k].code.trim().is_empty() {
            lines[k + 1..close]
                .iter()
                .find(|l| !l.code.trim().is_empty())
                .is_some_and(|l| {
                    let code = l.code.trim_start();
                    code.starts_with("assert") || code.starts_with("prop_assert")
                })
        } else {
            mentions_assert(&lines[k].code)
        };
        if asserting {
            ids.extend(found);
            used.push(k);
        }
    }
    (ids, used)
}

/// The names of the functions registered as model properties (`Property::always(NAME, f)`).
fn property_functions(lines: &[Line]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in lines {
        for kind in [
            "Property::always(",
            "Property::sometimes(",
            "Property::eventually(",
        ] {
            if let Some((_, rest)) = line.code.split_once(kind)
                && let Some((_, f)) = rest.split_once(',')
            {
                let f: String = f
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(f);
            }
        }
    }
    names
}

struct Scan {
    citers: Vec<Citer>,
    unknown: Vec<String>,
    loose: usize,
}

fn scan(ids: &BTreeSet<String>) -> Scan {
    let root = root();
    let mut files = Vec::new();
    for dir in ["impl", "model", "testkit", "benches", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut out = Scan {
        citers: Vec::new(),
        unknown: Vec::new(),
        loose: 0,
    };
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        if rel.ends_with(SELF) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines = lex(&text);
        // Validity: every `// spec:` ID, and every string literal that is an ID (`requirement()`).
        let mut cited_lines = BTreeSet::new();
        for (n, line) in lines.iter().enumerate() {
            let found = line.comment.as_deref().and_then(spec_ids);
            if found.is_some() {
                cited_lines.insert(n);
            }
            let literals = line.strings.iter().filter(|s| is_id(s)).cloned();
            for id in found.into_iter().flatten().chain(literals) {
                if !ids.contains(&id) {
                    out.unknown.push(format!("{rel}:{}: {id}", n + 1));
                }
            }
        }
        // Test functions, and model properties.
        let properties = if rel.starts_with("model/src/") {
            property_functions(&lines)
        } else {
            BTreeSet::new()
        };
        let mut attached = BTreeSet::new();
        for (n, line) in lines.iter().enumerate() {
            let code = line.code.trim();
            let is_test = code == "#[test]" || code.starts_with("#[tokio::test");
            let is_property = !properties.is_empty()
                && ["fn ", "pub fn ", "pub(crate) fn "].iter().any(|p| {
                    code.strip_prefix(p).is_some_and(|rest| {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        properties.contains(&name)
                    })
                });
            if !is_test && !is_property {
                continue;
            }
            let Some((fn_line, open, close)) = function_after(&lines, n) else {
                continue;
            };
            if is_property && fn_line != n {
                continue;
            }
            let (mut cited, above) = citations_above(&lines, fn_line);
            let (on_asserts, inside) = citations_on_asserts(&lines, open, close);
            cited.extend(on_asserts);
            attached.extend(above);
            attached.extend(inside);
            if cited.is_empty() {
                continue;
            }
            let name: String = lines[fn_line]
                .code
                .trim_start()
                .trim_start_matches("pub ")
                .trim_start_matches("async ")
                .trim_start_matches("fn ")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let kind = if is_property { "property" } else { "test" };
            out.citers.push(Citer {
                place: format!("{kind} {rel}:{} {name}", fn_line + 1),
                ids: cited.into_iter().collect(),
            });
        }
        out.loose += cited_lines.difference(&attached).count();
    }
    out
}

#[test]
fn every_citation_exists_and_coverage_is_reported() {
    let (ids, rows) = catalogue();
    assert!(rows.len() >= 194, "the catalogue lost rows: {}", rows.len());
    let scan = scan(&ids);
    assert!(
        scan.unknown.is_empty(),
        "citations of IDs that are not in spec/requirements.md:\n{}",
        scan.unknown.join("\n")
    );
    let crowded: Vec<String> = scan
        .citers
        .iter()
        .filter(|c| c.ids.len() > MAX_IDS_PER_TEST)
        .map(|c| format!("  {} cites {} IDs", c.place, c.ids.len()))
        .collect();

    let mut covered: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // A test citing too many IDs fails below, and covers nothing.
    for citer in scan
        .citers
        .iter()
        .filter(|c| c.ids.len() <= MAX_IDS_PER_TEST)
    {
        for id in &citer.ids {
            covered.entry(id).or_default().push(&citer.place);
        }
    }
    let binding = |r: &Row| r.level == "MUST" || r.level == "MUST NOT";
    // Umbrella rows: covered through the rows they stand for, all of which must be covered.
    for (id, row) in &rows {
        let Some(pattern) = &row.umbrella else {
            continue;
        };
        let parts: Vec<&String> = rows
            .iter()
            .filter(|(other, r)| {
                *other != id && binding(r) && r.na.is_none() && r.source.contains(pattern.as_str())
            })
            .map(|(other, _)| other)
            .collect();
        if !parts.is_empty() && parts.iter().all(|p| covered.contains_key(p.as_str())) {
            covered.entry(id).or_default().push("its parts");
        }
        println!(
            "umbrella {id}: {} rows whose source contains {pattern}, {} covered",
            parts.len(),
            parts
                .iter()
                .filter(|p| covered.contains_key(p.as_str()))
                .count()
        );
    }
    let is_covered = |id: &str| covered.contains_key(id);

    // Per level, then per role (MUST and MUST NOT rows); N/A rows are counted apart.
    let tally = |filter: &dyn Fn(&Row) -> bool| {
        let mut done = 0;
        let mut total = 0;
        let mut na = 0;
        for (id, row) in rows.iter().filter(|(_, r)| filter(r)) {
            if row.na.is_some() {
                na += 1;
            } else {
                total += 1;
                done += usize::from(is_covered(id));
            }
        }
        (done, total, na)
    };
    let (done, total, na) = tally(&|r| binding(r));
    println!("traceability: {done}/{total} MUST and MUST NOT rows covered ({na} N/A apart)");
    for level in LEVELS {
        let (done, total, na) = tally(&|r| r.level == level);
        println!("traceability: {done}/{total} {level} ({na} N/A apart)");
    }
    for role in ROLES {
        let (done, total, na) = tally(&|r| binding(r) && r.roles.contains(role));
        println!("traceability: {done}/{total} {role} MUST and MUST NOT ({na} N/A apart)");
    }
    for revision in REVISIONS {
        let (done, total, na) = tally(&|r| binding(r) && r.revisions.contains(revision));
        println!(
            "traceability: {done}/{total} MUST and MUST NOT of revision {revision} ({na} N/A apart)"
        );
    }
    println!(
        "citations attached to a test or property: {}; elsewhere (documentation only): {}",
        scan.citers.iter().map(|c| c.ids.len()).sum::<usize>(),
        scan.loose
    );

    println!("N/A rows (not counted):");
    for (id, row) in rows.iter().filter(|(_, r)| r.na.is_some()) {
        println!(
            "  {id} ({}): {}",
            row.level,
            row.na.as_deref().unwrap_or("")
        );
    }
    let uncovered = |levels: &[&str]| -> Vec<String> {
        rows.iter()
            .filter(|(id, r)| {
                levels.contains(&r.level.as_str()) && r.na.is_none() && !is_covered(id)
            })
            .map(|(id, r)| {
                let roles: Vec<&str> = r.roles.iter().map(String::as_str).collect();
                format!("  {id} ({}, {})", r.level, roles.join(", "))
            })
            .collect()
    };
    let missing = uncovered(&["MUST", "MUST NOT"]);
    println!("MUST and MUST NOT rows not covered: {}", missing.len());
    for line in &missing {
        println!("{line}");
    }
    let advisory = uncovered(&["SHOULD", "SHOULD NOT"]);
    println!("SHOULD and SHOULD NOT rows not covered: {}", advisory.len());
    for line in &advisory {
        println!("{line}");
    }

    assert!(
        crowded.is_empty(),
        "a test or property cites more than {MAX_IDS_PER_TEST} IDs; cite each ID on the test that \
         asserts it:\n{}",
        crowded.join("\n")
    );
    assert!(
        missing.is_empty(),
        "MUST and MUST NOT rows of the AS, the RS or the client with no citing test or property \
         and no N/A reason:\n{}",
        missing.join("\n")
    );
}

#[test]
fn rejections_name_existing_requirements() {
    let (ids, _) = catalogue();
    for r in mcp_auth_proto::Rejection::ALL {
        assert!(
            ids.contains(r.requirement()),
            "{r:?} names {}",
            r.requirement()
        );
    }
}

/// The checker's own rules, on a small source text.
#[test]
fn only_a_tests_own_citation_counts() {
    let text = r##"
// spec: GEN-1
use x;

// spec: GEN-2
#[test]
/// doc
fn cited_above() {
    let s = "// spec: GEN-3";
    // spec: GEN-4
    let x = 1;
    assert!(x == 1); // spec: GEN-5
    // spec: GEN-6
    assert_eq!(x, 1);
    let c = '"'; // spec: GEN-7
}

fn helper() {
    assert!(true); // spec: GEN-8
}
"##;
    let lines = lex(text);
    let test = lines
        .iter()
        .position(|l| l.code.trim() == "#[test]")
        .unwrap();
    let (fn_line, open, close) = function_after(&lines, test).unwrap();
    assert_eq!(fn_line, test + 2);
    let (above, _) = citations_above(&lines, fn_line);
    assert_eq!(above, ["GEN-2"]);
    let (inside, _) = citations_on_asserts(&lines, open, close);
    assert_eq!(inside, ["GEN-5", "GEN-6"]);
    assert!(
        lines
            .iter()
            .any(|l| l.strings.iter().any(|s| s == "// spec: GEN-3"))
    );
}
