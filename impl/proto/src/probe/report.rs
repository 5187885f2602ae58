//! The probe's report for people (a table grouped by area) and for CI (JSON, JUnit XML).
//! Evidence shows requests and answers with every secret shortened
//! ([CLI-6](crate::requirements#CLI-6)).

use std::fmt::Write as _;

use super::{Exchange, Finding, Level, Report, Verdict};
use crate::redact::{shorten, shorten_pairs, shorten_url};

/// Headers of a request worth showing (their secrets shortened).
const REQUEST_HEADERS: &[&str] = &["authorization", "origin", "mcp-session-id", "content-type"];
/// Headers of an answer worth showing.
const ANSWER_HEADERS: &[&str] = &[
    "www-authenticate",
    "location",
    "content-type",
    "access-control-allow-origin",
    "cache-control",
    "mcp-session-id",
];

fn shorten_authorization(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, rest)) => format!("{scheme} {}", shorten(rest)),
        None => shorten(value),
    }
}

/// A body for display: a form's or JSON's secrets shortened, at most
/// [`super::EVIDENCE_BODY_MAX`] characters.
fn shorten_body(body: &[u8], form: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let shown = if form {
        shorten_pairs(&text)
    } else if let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(map) = json.as_object_mut() {
            for key in crate::redact::SECRET_FIELDS {
                if let Some(serde_json::Value::String(s)) = map.get_mut(*key) {
                    *s = shorten(s);
                }
            }
        }
        json.to_string()
    } else {
        text.into_owned()
    };
    let mut out: String = shown.chars().take(super::EVIDENCE_BODY_MAX).collect();
    if shown.chars().count() > super::EVIDENCE_BODY_MAX {
        out.push('…');
    }
    out.replace(['\n', '\r'], " ")
}

/// One exchange on a line or a few: request, notable headers, body; status, headers, body.
pub(crate) fn show_exchange(e: &Exchange) -> String {
    let r = &e.request;
    let mut s = format!("{} {}", r.method.as_str(), shorten_url(&r.url));
    for (name, value) in &r.headers {
        if REQUEST_HEADERS.contains(&name.as_str()) {
            let value = String::from_utf8_lossy(value);
            let value = match name.as_str() {
                "authorization" => shorten_authorization(&value),
                "mcp-session-id" => shorten(&value),
                _ => value.into_owned(),
            };
            let _ = write!(s, " [{name}: {value}]");
        } else if value.len() > 1024 {
            let _ = write!(s, " [{name}: {} bytes]", value.len());
        }
    }
    if !r.body.is_empty() {
        let form = r.has_content_type("application/x-www-form-urlencoded");
        let _ = write!(s, " body {}", shorten_body(&r.body, form));
    }
    match &e.answer {
        Ok(a) => {
            let _ = write!(s, " → {}", a.status);
            for (name, value) in &a.headers {
                if ANSWER_HEADERS.contains(&name.as_str()) {
                    let value = if name == "location" {
                        shorten_url(value)
                    } else {
                        value.clone()
                    };
                    let _ = write!(s, " [{name}: {value}]");
                }
            }
            if !a.body.is_empty() {
                let _ = write!(s, " body {}", shorten_body(&a.body, false));
            }
        }
        Err(why) => {
            let _ = write!(s, " → no answer: {why}");
        }
    }
    s
}

/// The report as a table grouped by area: verdict, IDs, level, title; evidence and fix under
/// each FAIL and WARN, the reason under each SKIP; counts at the end.
pub fn render_table(report: &Report, verbose: bool) -> String {
    let mut out = format!(
        "mcp-auth probe {} (revision {}): {} requests\n",
        report.target, report.revision, report.requests
    );
    let mut areas: Vec<_> = report.findings.iter().map(|f| f.area).collect();
    areas.sort();
    areas.dedup();
    for area in areas {
        let _ = writeln!(out, "\n== {} ==", area.as_str());
        for f in report.findings.iter().filter(|f| f.area == area) {
            let _ = writeln!(
                out,
                "{:<4} {:<24} {:<6} {:<28} {}",
                f.verdict.as_str(),
                f.ids.join(","),
                f.level.as_str(),
                f.name,
                f.title
            );
            match &f.verdict {
                Verdict::Fail { evidence, fix } | Verdict::Warn { evidence, fix } => {
                    let _ = writeln!(out, "       saw: {evidence}");
                    let _ = writeln!(out, "       fix: {fix}");
                    for e in &f.exchanges {
                        let _ = writeln!(out, "       > {e}");
                    }
                }
                Verdict::Skip { reason } => {
                    let _ = writeln!(out, "       why: {reason}");
                }
                Verdict::Pass if verbose => {
                    for e in &f.exchanges {
                        let _ = writeln!(out, "       > {e}");
                    }
                }
                Verdict::Pass => {}
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:>5} {:>5} {:>5} {:>5}",
        "level", "PASS", "FAIL", "WARN", "SKIP"
    );
    for level in [Level::Must, Level::Should, Level::May] {
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>5} {:>5} {:>5}",
            level.as_str(),
            report.count("PASS", level),
            report.count("FAIL", level),
            report.count("WARN", level),
            report.count("SKIP", level)
        );
    }
    out
}

fn finding_json(f: &Finding) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": f.name,
        "area": f.area.as_str(),
        "ids": f.ids,
        "level": f.level.as_str(),
        "title": f.title,
        "verdict": f.verdict.as_str(),
        "exchanges": f.exchanges,
    });
    match &f.verdict {
        Verdict::Fail { evidence, fix } | Verdict::Warn { evidence, fix } => {
            v["evidence"] = evidence.clone().into();
            v["fix"] = fix.clone().into();
        }
        Verdict::Skip { reason } => v["reason"] = reason.clone().into(),
        Verdict::Pass => {}
    }
    v
}

/// The report as one JSON document.
pub fn render_json(report: &Report) -> String {
    let counts: serde_json::Map<String, serde_json::Value> =
        [Level::Must, Level::Should, Level::May]
            .iter()
            .map(|&l| {
                (
                    l.as_str().to_owned(),
                    serde_json::json!({
                        "pass": report.count("PASS", l),
                        "fail": report.count("FAIL", l),
                        "warn": report.count("WARN", l),
                        "skip": report.count("SKIP", l),
                    }),
                )
            })
            .collect();
    let doc = serde_json::json!({
        "target": report.target,
        "revision": report.revision,
        "requests": report.requests,
        "must_failed": report.must_failed(),
        "counts": counts,
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The report as JUnit XML: one test suite per area, one test case per check; a MUST that
/// failed is a `<failure>`, a SHOULD or MAY that did not hold is a `<failure type="warning">`
/// only in its `<system-out>` (CI stays green), a SKIP is `<skipped>`.
pub fn render_junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Fail { .. }))
        .count();
    let _ = writeln!(
        out,
        "<testsuites name=\"mcp-auth probe {}\" tests=\"{}\" failures=\"{failures}\">",
        xml(&report.target),
        report.findings.len()
    );
    let mut areas: Vec<_> = report.findings.iter().map(|f| f.area).collect();
    areas.sort();
    areas.dedup();
    for area in areas {
        let cases: Vec<&Finding> = report.findings.iter().filter(|f| f.area == area).collect();
        let failed = cases
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Fail { .. }))
            .count();
        let skipped = cases
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Skip { .. }))
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\">",
            xml(area.as_str()),
            cases.len()
        );
        for f in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{} {}\" name=\"{} {}\">",
                xml(&f.ids.join(",")),
                f.level.as_str(),
                f.name,
                xml(f.title)
            );
            match &f.verdict {
                Verdict::Pass => {}
                Verdict::Fail { evidence, fix } => {
                    let _ = write!(
                        out,
                        "<failure message=\"{}\">{}</failure>",
                        xml(fix),
                        xml(&format!("{evidence}\n{}", f.exchanges.join("\n")))
                    );
                }
                Verdict::Warn { evidence, fix } => {
                    let _ = write!(
                        out,
                        "<system-out>WARN: {}</system-out>",
                        xml(&format!("{evidence}; fix: {fix}"))
                    );
                }
                Verdict::Skip { reason } => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(reason));
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
