//! The guard's cost per request, in process (no sockets): a `GET /mcp` with a cached token
//! through [`AuthLayer`] in front of a trivial endpoint, against the endpoint alone. The
//! loopback figure (`ratio http/cached-vs-plain` of `ratios`) adds hyper and the kernel.

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use mcp_auth_benches::tokens::Fixture;
use mcp_auth_layer::{AuthLayer, McpGuard, OsEntropy};
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::jwt::Alg;
use tower::{Layer, Service, ServiceExt};

fn request(authorization: &str) -> http::Request<Full<Bytes>> {
    http::Request::get("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", "application/json")
        .header("authorization", authorization)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn layer(c: &mut Criterion) {
    let f = Fixture::new(Alg::ES256);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let endpoint = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let guard = McpGuard::new(f.rs.clone(), Sessions::new(&mut OsEntropy));
    let layer = AuthLayer::with_roots(guard, rustls::RootCertStore::empty());
    let guarded = layer.layer(endpoint);
    let mut g = c.benchmark_group("layer");
    g.bench_function("plain", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(endpoint.oneshot(request(&f.authorization)))
                .expect("answer");
            assert_eq!(response.status(), 200);
        });
    });
    g.bench_function("guarded-cached", |b| {
        b.iter(|| {
            let mut service = guarded.clone();
            let response = runtime
                .block_on(async {
                    std::future::poll_fn(|cx| {
                        Service::<http::Request<Full<Bytes>>>::poll_ready(&mut service, cx)
                    })
                    .await?;
                    service.call(request(&f.authorization)).await
                })
                .expect("answer");
            assert_eq!(response.status(), 200);
        });
    });
    g.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
