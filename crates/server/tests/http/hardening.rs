//! Transport hardening against a running server on a random port: TLS from PEM files (and a
//! clear error for a bad file), security headers on every answer, and the rate limit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::Autolog;
use autolog_domain::SigningKey;
use autolog_server::{serve, RateLimit, ServeOptions, TlsFiles};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

async fn app(target: &Target) -> Arc<Autolog> {
    let store = target.open().await;
    Arc::new(Autolog::from_parts(
        store,
        SigningKey::from_bytes(&[42u8; 32]),
    ))
}

fn options(tls: Option<TlsFiles>, rate_limit: Option<RateLimit>) -> ServeOptions {
    ServeOptions {
        checkpoint_interval: Duration::from_secs(3600),
        tls,
        rate_limit,
        ..ServeOptions::default()
    }
}

/// Starts a server on a random port; returns its address.
async fn spawn(target: &Target, options: ServeOptions) -> SocketAddr {
    let app = app(target).await;
    crate::common::serve_with(app, options).await
}

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
fn self_signed(dir: &Path) -> (TlsFiles, String) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert_pem = generated.cert.pem();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, &cert_pem).expect("write cert");
    std::fs::write(&files.key, generated.key_pair.serialize_pem()).expect("write key");
    (files, cert_pem)
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn assert_security_headers(headers: &HeaderMap, tls: bool) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-content-type-options"), Some("nosniff"));
    assert_eq!(header("x-frame-options"), Some("DENY"));
    assert_eq!(
        header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(header("referrer-policy"), Some("no-referrer"));
    assert_eq!(header("cache-control"), Some("no-store"));
    let hsts = header("strict-transport-security");
    if tls {
        assert_eq!(hsts, Some("max-age=31536000"));
    } else {
        assert_eq!(hsts, None, "no HSTS over plain HTTP");
    }
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    run_on(Backend::Sqlite, "tls", |t| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, cert_pem) = self_signed(dir.path());
        let addr = spawn(&t, options(Some(files), Some(RateLimit::default()))).await;

        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("certificate"),
            )
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let answer = client
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .send()
            .await
            .expect("https request");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_security_headers(answer.headers(), true);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["status"], "ok");
        assert!(
            body.get("tree_size").is_none(),
            "no size for anonymous callers: {body}"
        );

        // A 404 over TLS carries the headers too.
        let answer = client
            .get(format!("https://localhost:{}/no/such/route", addr.port()))
            .send()
            .await
            .expect("https request");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert_security_headers(answer.headers(), true);

        // Plain HTTP to the TLS port gets no answer.
        let plain = plain_client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await;
        assert!(
            plain.is_err(),
            "plain HTTP answered on the TLS port: {plain:?}"
        );

        // A client that does not trust the certificate is refused.
        let untrusting = reqwest::Client::builder()
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .send()
            .await;
        assert!(untrusting.is_err(), "an unknown certificate was accepted");
    })
    .await;
}

#[tokio::test]
async fn a_bad_certificate_or_key_file_is_a_clear_error_before_serving() {
    run_on(Backend::Sqlite, "tls_bad_files", |t| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (good, _) = self_signed(dir.path());
        let attempt = |files: TlsFiles| {
            let t = &t;
            async move {
                let app = app(t).await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                // Returns (rather than serving until shutdown) because the files are bad.
                let served = tokio::time::timeout(
                    Duration::from_secs(30),
                    serve(listener, app, options(Some(files.clone()), None), async {}),
                )
                .await
                .expect("serve returned at once");
                let checked = files.check().await;
                let e = served.expect_err("bad TLS files were accepted");
                let checked = checked.expect_err("check accepted bad TLS files");
                assert_eq!(e.to_string(), checked.to_string());
                e.to_string()
            }
        };

        let bad_key = dir.path().join("bad-key.pem");
        std::fs::write(&bad_key, "this is not a private key\n").expect("write");
        let message = attempt(TlsFiles {
            cert: good.cert.clone(),
            key: bad_key.clone(),
        })
        .await;
        assert!(
            message.contains("private key") && message.contains(&bad_key.display().to_string()),
            "{message}"
        );

        let missing_cert = dir.path().join("missing.pem");
        let message = attempt(TlsFiles {
            cert: missing_cert.clone(),
            key: good.key.clone(),
        })
        .await;
        assert!(
            message.contains("certificate")
                && message.contains(&missing_cert.display().to_string()),
            "{message}"
        );

        // The key of another certificate does not fit.
        let other = tempfile::tempdir().expect("tempdir");
        let (other, _) = self_signed(other.path());
        let message = attempt(TlsFiles {
            cert: good.cert.clone(),
            key: other.key.clone(),
        })
        .await;
        assert!(
            message.contains(&other.key.display().to_string()),
            "{message}"
        );

        assert!(good.check().await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    run_on(Backend::Sqlite, "security_headers", |t| async move {
        let addr = spawn(&t, ServeOptions::default()).await;
        let client = plain_client();
        let answer = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_security_headers(answer.headers(), false);

        let answer = client
            .get(format!("http://{addr}/no/such/route"))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert_security_headers(answer.headers(), false);
    })
    .await;
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after() {
    run_on(Backend::Sqlite, "rate_limit", |t| async move {
        let limit = RateLimit {
            per_second: 1,
            burst: 3,
        };
        let addr = spawn(&t, options(None, Some(limit))).await;
        let client = plain_client();
        let get = || async {
            client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .expect("request")
        };
        // The burst is always allowed.
        for _ in 0..3 {
            assert_eq!(get().await.status(), StatusCode::OK);
        }
        // The next immediate request is refused; a few more tries keep this true on a machine
        // so slow that a token flowed back in meanwhile (no timing is asserted).
        let mut refused = None;
        for _ in 0..10 {
            let answer = get().await;
            if answer.status() == StatusCode::TOO_MANY_REQUESTS {
                refused = Some(answer);
                break;
            }
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let answer = refused.expect("a 429 once the burst is spent");
        assert_security_headers(answer.headers(), false);
        let retry_after: u64 = answer
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("text")
            .parse()
            .expect("whole seconds");
        assert!(retry_after >= 1);
        let body: Value = answer.json().await.expect("json");
        let error = &body["error"];
        assert_eq!(error["code"], "rate_limited");
        assert_eq!(error["field"], "request");
        assert_eq!(error["value"], "127.0.0.1");
        let rule = error["rule"].as_str().expect("rule");
        assert!(
            rule.contains("at most 1 per client address") && rule.contains("bursts of up to 3"),
            "{rule}"
        );
    })
    .await;
}

/// Reads from `stream` until the server closes it, by an end of stream or a reset (or
/// `None` when 20 s pass first); what was read.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut seen)).await;
    read.ok().map(|_| seen)
}

/// A client that never finishes its request head is disconnected once the header-read
/// timeout passes, and a whole request on another connection is still served.
#[tokio::test]
async fn an_unfinished_request_head_is_cut_off() {
    run_on(Backend::Sqlite, "slow_head", |t| async move {
        use tokio::io::AsyncWriteExt;
        let options = ServeOptions {
            header_read_timeout: Duration::from_secs(1),
            ..options(None, None)
        };
        let addr = spawn(&t, options).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        assert!(
            read_until_closed(&mut slow).await.is_some(),
            "the server closes a connection whose request head never ends"
        );
        let answer = plain_client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), StatusCode::OK);
    })
    .await;
}

/// One client address holds at most the configured number of connections: one more is
/// closed at once, without an answer, and a freed place is given again.
#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections() {
    run_on(Backend::Sqlite, "connection_cap", |t| async move {
        use tokio::io::AsyncWriteExt;
        let options = ServeOptions {
            max_connections_per_client: 3,
            ..options(None, None)
        };
        let addr = spawn(&t, options).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let seen = read_until_closed(&mut extra).await.expect("closed");
        assert!(
            seen.is_empty(),
            "no answer: {}",
            String::from_utf8_lossy(&seen)
        );
        // A held connection is served; once the three close, a new one is too.
        let first = held.first_mut().expect("a connection");
        first
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_until_closed(first).await.expect("answer");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        drop(held);
        let mut freed = None;
        for _ in 0..100 {
            let answer = plain_client()
                .get(format!("http://{addr}/healthz"))
                .send()
                .await;
            if let Ok(a) = answer {
                freed = Some(a.status());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(freed, Some(StatusCode::OK), "places are given back");
    })
    .await;
}
