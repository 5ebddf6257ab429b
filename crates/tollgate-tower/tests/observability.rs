//! Observability of the auth layer: span fields, log levels, counters, and
//! never a token. Its own test binary: a process-wide subscriber, no other
//! test racing on tracing's callsite cache.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use tollgate_conformance::jwt::{Signer, good_claims, now};
use tollgate_core::policy::{IpBinding, MemoryStore, Policies};
use tollgate_core::{Authenticator, TrustedIssuer};
use tollgate_tower::AuthLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn token(exp_offset: i64) -> String {
    let mut claims = good_claims("https://issuer.example");
    claims["client_id"] = "c-9".into();
    claims["exp"] = (now() + exp_offset).into();
    Signer::hs256(SECRET).sign(Some("k1"), &claims)
}

fn layer() -> AuthLayer {
    let issuer = TrustedIssuer::new("https://issuer.example")
        .audience("api")
        .key(Signer::hs256(SECRET).verifying_key().with_kid("k1"));
    AuthLayer::new(Authenticator::builder().issuer(issuer).build().unwrap())
}

fn request(token: Option<&str>) -> Request<String> {
    let mut b = Request::get("/");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(String::new()).unwrap()
}

/// Counts increments per metric key (name and labels).
#[derive(Default)]
struct Recorder(Arc<Mutex<HashMap<String, u64>>>);

struct KeyCounter(String, Arc<Mutex<HashMap<String, u64>>>);

impl metrics::CounterFn for KeyCounter {
    fn increment(&self, v: u64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += v;
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Counter::from_arc(Arc::new(KeyCounter(name, self.0.clone())))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spans_logs_and_counters_name_the_outcome_but_never_the_token() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let recorder = Recorder::default();
    let good = token(600);
    let expired = token(-3600);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    {
        metrics::with_local_recorder(&recorder, || {
            let svc = ServiceBuilder::new().layer(layer()).service(service_fn(
                |_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
            ));
            for t in [Some(good.as_str()), Some(expired.as_str()), None] {
                rt.block_on(svc.clone().oneshot(request(t))).unwrap();
            }
        })
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("outcome=\"accepted\"") || text.contains("outcome=accepted"),
        "{text}"
    );
    assert!(
        text.contains("sub=\"user-1\"") || text.contains("sub=user-1"),
        "{text}"
    );
    assert!(
        text.contains("client_id=\"c-9\"") || text.contains("client_id=c-9"),
        "{text}"
    );
    assert!(
        text.contains("kid=\"k1\"") || text.contains("kid=k1"),
        "{text}"
    );
    assert!(text.contains("token_expired"), "{text}");
    assert!(
        text.contains("DEBUG") && !text.contains(" INFO "),
        "rejections log at debug: {text}"
    );
    for t in [&good, &expired] {
        for part in t.split('.') {
            assert!(!text.contains(part), "the log holds a token part: {text}");
        }
    }
    let counts = recorder.0.lock().unwrap();
    assert_eq!(
        counts.get("tollgate_authentications_total{outcome=accepted}"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("tollgate_authentications_total{outcome=rejected,reason=token_expired}"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("tollgate_authentications_total{outcome=rejected,reason=missing_token}"),
        Some(&1),
        "{counts:?}"
    );
    drop(counts);

    // Address binding without a peer address: every request is a server
    // mistake naming the fix, logged at error once, not once per request.
    log.0.lock().unwrap().clear();
    let issuer = TrustedIssuer::new("https://issuer.example")
        .audience("api")
        .key(Signer::hs256(SECRET).verifying_key().with_kid("k1"));
    let auth = Authenticator::builder()
        .issuer(issuer)
        .policies(Policies::new(Arc::new(MemoryStore::new())).ip_binding(IpBinding::new()))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(auth))
        .service(service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    for t in [Some(good.as_str()), None, Some(good.as_str())] {
        let resp = rt.block_on(svc.clone().oneshot(request(t))).unwrap();
        assert_eq!(resp.status(), 500);
        assert!(
            resp.body()
                .contains("into_make_service_with_connect_info::<SocketAddr>()"),
            "{}",
            resp.body()
        );
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "logged once: {text}");
    assert!(
        errors[0].contains("into_make_service_with_connect_info::<SocketAddr>()"),
        "{text}"
    );
    for part in good.split('.') {
        assert!(!text.contains(part), "the log holds a token part: {text}");
    }
}
