//! Traceability between `spec/requirements.md` and the code.
//!
//! Fails when any source file cites an ID that is not in the catalogue; prints
//! `traceability: COVERED/TOTAL` for the MUST / MUST NOT rows binding the AS, the RS or the
//! client, and the rows not yet covered. See `spec/README.md` for the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

struct Row {
    level: String,
    roles: Vec<String>,
    na: bool,
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
        if cells.len() == 6 {
            let level = cells[2].to_string();
            assert!(
                ["MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY"].contains(&level.as_str()),
                "{id}: bad level {level}"
            );
            let roles = cells[3].split(',').map(|r| r.trim().to_string()).collect();
            rows.insert(
                id.to_string(),
                Row {
                    level,
                    roles,
                    na: cells[5].starts_with("N/A:"),
                },
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

/// The IDs a line cites: after `spec:` (comma-separated), and string literals that are IDs.
fn citations(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((_, rest)) = line.split_once("spec:") {
        for part in rest.split(',') {
            let id: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if is_id(&id) {
                found.push(id);
            }
        }
    }
    for literal in line.split('"').skip(1).step_by(2) {
        if is_id(literal) {
            found.push(literal.to_string());
        }
        // Model property names: "TOK-6: ..." cite TOK-6.
        if let Some((head, _)) = literal.split_once(':')
            && is_id(head)
        {
            found.push(head.to_string());
        }
    }
    found
}

#[test]
fn every_citation_exists_and_coverage_is_reported() {
    let (ids, rows) = catalogue();
    assert!(rows.len() >= 194, "the catalogue lost rows: {}", rows.len());
    let root = root();
    let mut files = Vec::new();
    for dir in ["impl", "model", "benches", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut unknown = Vec::new();
    let mut tested: BTreeSet<String> = BTreeSet::new();
    let mut cited: BTreeSet<String> = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        let in_tests_dir = rel.split('/').any(|c| c == "tests");
        let in_model = rel.starts_with("model/");
        let mut in_test_module = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                in_test_module = true;
            }
            for id in citations(line) {
                if !ids.contains(&id) {
                    unknown.push(format!("{rel}:{}: {id}", n + 1));
                    continue;
                }
                cited.insert(id.clone());
                if in_tests_dir || in_model || in_test_module {
                    tested.insert(id);
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "citations of IDs that are not in spec/requirements.md:\n{}",
        unknown.join("\n")
    );

    let ours = |r: &Row| {
        r.roles
            .iter()
            .any(|role| ["AS", "RS", "client", "all"].contains(&role.as_str()))
    };
    let musts: Vec<(&String, &Row)> = rows
        .iter()
        .filter(|(_, r)| (r.level == "MUST" || r.level == "MUST NOT") && ours(r))
        .collect();
    let uncovered: Vec<&String> = musts
        .iter()
        .filter(|(id, r)| !r.na && !tested.contains(*id))
        .map(|(id, _)| *id)
        .collect();
    println!(
        "traceability: {}/{}",
        musts.len() - uncovered.len(),
        musts.len()
    );
    println!(
        "cited anywhere: {} of {} requirement rows",
        cited.iter().filter(|c| rows.contains_key(*c)).count(),
        rows.len()
    );
    if !uncovered.is_empty() {
        println!("MUST rows not yet covered by a test or model property:");
        for id in &uncovered {
            println!("  {id}");
        }
    }
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
