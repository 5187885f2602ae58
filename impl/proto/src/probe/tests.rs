use super::*;

/// Run the probe against `server`, a function from request to answer.
fn run(config: ProbeConfig, server: impl Fn(&HttpRequest) -> HttpResponse) -> Report {
    let mut probe = Probe::new(config);
    while let Some(send) = probe.next_request() {
        let answer = server(send.request());
        probe.answer(Ok(answer));
    }
    probe.finish()
}

fn config() -> ProbeConfig {
    ProbeConfig::new(
        "https://mcp.example/mcp",
        Revision::V2025_06_18,
        UnixTime::from_secs(1_000_000),
    )
}

// spec: PRM-8, RS-3, JWT-9
#[test]
fn a_server_that_accepts_everything_fails_the_musts() {
    let report = run(config(), |_| HttpResponse::new(200));
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Fail { .. }))
        .map(|f| f.name)
        .collect();
    for name in [
        "challenge",
        "bogus-token",
        "alg-none",
        "session-without-token",
    ] {
        assert!(failed.contains(&name), "{name} not failed: {failed:?}");
    }
    assert!(report.must_failed());
}

// spec: PRM-8
#[test]
fn without_input_the_key_and_flow_checks_are_skipped_with_a_reason() {
    let report = run(config(), |_| HttpResponse::new(404));
    for f in &report.findings {
        if matches!(f.area, Area::Claims | Area::Flow | Area::Registration) {
            assert!(matches!(f.verdict, Verdict::Skip { .. }), "{f:?}");
        }
    }
    assert!(report.requests <= REQUESTS_MAX);
}

#[test]
fn only_selects_by_name_or_id_prefix() {
    let mut c = config();
    c.only = Some("JWT-".into());
    let report = run(c, |_| HttpResponse::new(401));
    assert!(!report.findings.is_empty());
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.ids.iter().any(|id| id.starts_with("JWT-")))
    );
}

#[test]
fn every_check_cites_catalogue_ids_and_has_a_unique_name() {
    let all = catalogue();
    let mut names: Vec<_> = all.iter().map(|(n, _, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len());
    for (_, ids, _) in all {
        assert!(!ids.is_empty() && ids.len() <= 5);
    }
}

#[test]
fn evidence_shortens_tokens() {
    let e = Exchange {
        request: HttpRequest::new(Method::Post, "https://mcp.example/mcp")
            .header("authorization", format!("Bearer {}", "x".repeat(200))),
        answer: Ok(HttpResponse::new(401)),
    };
    let shown = e.show();
    assert!(!shown.contains(&"x".repeat(20)), "{shown}");
    assert!(shown.contains("(200 chars)"), "{shown}");
}

#[test]
fn the_reports_say_the_same() {
    let report = run(config(), |_| HttpResponse::new(200));
    let json: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
    assert_eq!(json["must_failed"], true);
    assert_eq!(
        json["counts"]["MUST"]["fail"].as_u64().unwrap() as usize,
        report.count("FAIL", Level::Must)
    );
    let xml = render_junit(&report);
    let failures = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Fail { .. }))
        .count();
    assert!(failures > 0);
    assert_eq!(xml.matches("<failure ").count(), failures, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), report.findings.len());
    let table = render_table(&report, false);
    assert!(table.contains("FAIL") && table.contains("fix: "), "{table}");
}

#[test]
fn the_probe_is_a_plain_value() {
    fn assert_value<T: Clone + Eq + std::hash::Hash + std::fmt::Debug>() {}
    assert_value::<Probe>();
    let mut a = Probe::new(config());
    let b = a.clone();
    assert_eq!(a, b);
    a.next_request();
    assert_ne!(a, b);
}

// spec: SEC-17
#[test]
fn a_rate_limited_answer_is_no_failure() {
    let report = run(config(), |r| {
        if r.header_str("authorization").is_some() {
            HttpResponse::new(429)
        } else {
            HttpResponse::new(404)
        }
    });
    let bogus = report
        .findings
        .iter()
        .find(|f| f.name == "bogus-token")
        .unwrap();
    assert!(
        matches!(&bogus.verdict, Verdict::Skip { reason } if reason.contains("429")),
        "{bogus:?}"
    );
}

#[test]
fn a_request_without_answer_is_no_failure() {
    let mut probe = Probe::new(config());
    let mut n = 0;
    while let Some(send) = probe.next_request() {
        n += 1;
        if send.request().header_str("authorization").is_some() {
            probe.answer(Err("connection reset".into()));
        } else {
            probe.answer(Ok(HttpResponse::new(200)));
        }
    }
    assert!(n > 0);
    let report = probe.finish();
    let bogus = report
        .findings
        .iter()
        .find(|f| f.name == "bogus-token")
        .unwrap();
    assert!(
        matches!(&bogus.verdict, Verdict::Skip { reason } if reason.contains("reset")),
        "{bogus:?}"
    );
    // The checks without credentials still fail: the server answered them.
    let challenge = report
        .findings
        .iter()
        .find(|f| f.name == "challenge")
        .unwrap();
    assert_eq!(challenge.verdict.as_str(), "FAIL");
}
