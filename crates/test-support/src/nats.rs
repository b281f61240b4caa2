//! NATS JetStream for tests of the outbound feed: is a server there, a fresh subject
//! prefix and stream per test, and reading a stream back with a consumer.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::Value;

/// The NATS client, for tests that publish or read on their own.
pub use async_nats;

/// The NATS server the tests use: `AUTOLOG_TEST_NATS_URL`, default the local one.
pub fn nats_url() -> String {
    std::env::var("AUTOLOG_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_string())
}

/// The NATS URL when a server listens there. Otherwise the test is skipped with a message,
/// unless `AUTOLOG_REQUIRE_NATS=1` (CI), where a missing server fails it.
pub fn nats_or_skip(test: &str) -> Option<String> {
    let url = nats_url();
    let address = url
        .split("://")
        .last()
        .unwrap_or(&url)
        .rsplit('@')
        .next()
        .unwrap_or(&url)
        .to_string();
    let listening = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if listening {
        return Some(url);
    }
    if std::env::var("AUTOLOG_REQUIRE_NATS").is_ok_and(|v| v == "1") {
        panic!("{test}: no NATS server listens at {address} and AUTOLOG_REQUIRE_NATS=1");
    }
    eprintln!("skipped {test}: no NATS server listens at {address} (start `nats-server -js`)");
    None
}

/// A subject prefix and stream name no other test uses.
pub fn unique_feed(test: &str) -> (String, String) {
    let id = autolog_domain::Uuid::now_v7().simple().to_string();
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    (
        format!("test.{short}.{id}"),
        format!("TEST_{}_{id}", short.to_ascii_uppercase()),
    )
}

/// One message of the stream as a subscriber sees it.
#[derive(Debug, Clone)]
pub struct FeedMessage {
    pub stream_sequence: u64,
    pub subject: String,
    /// Every header, by name (first value of each).
    pub headers: BTreeMap<String, String>,
    /// The JSON body (a JSON string of the text when the body is not JSON).
    pub body: Value,
}

impl FeedMessage {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The `Autolog-Position` header as a number (0 when absent).
    pub fn position(&self) -> u64 {
        self.header("Autolog-Position").parse().unwrap_or(0)
    }
}

pub async fn connect(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    jetstream::new(client)
}

/// How many messages the stream holds (0 when it does not exist yet).
pub async fn message_count(url: &str, stream: &str) -> u64 {
    let js = connect(url).await;
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits (at most `limit`) until the stream holds at least `count` messages; the count then.
pub async fn wait_for_messages(url: &str, stream: &str, count: u64, limit: Duration) -> u64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let n = message_count(url, stream).await;
        if n >= count || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message from stream sequence `from` (1: all) up to the stream's last one when
/// called, in stream order, read with an ephemeral pull consumer.
pub async fn read_feed(url: &str, stream: &str, from: u64) -> Vec<FeedMessage> {
    let js = connect(url).await;
    let mut stream = js.get_stream(stream).await.expect("the stream exists");
    // Read up to the last message there is now (a fetch may come back empty early).
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let deliver_policy = if from <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: from,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("create a consumer");
    let mut out: Vec<FeedMessage> = Vec::new();
    let mut empty_fetches = 0;
    loop {
        if out
            .last()
            .map_or(from.max(1) > last, |m| m.stream_sequence >= last)
        {
            return out;
        }
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .messages()
            .await
            .expect("fetch");
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.expect("message");
            let info = message.info().expect("JetStream message info");
            let mut headers = BTreeMap::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    if let Some(v) = values.first() {
                        headers.insert(name.to_string(), v.as_str().to_string());
                    }
                }
            }
            out.push(FeedMessage {
                stream_sequence: info.stream_sequence,
                subject: message.subject.to_string(),
                headers,
                // Not JSON (another publisher's message): the text, as a JSON string.
                body: serde_json::from_slice(&message.payload).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&message.payload).into_owned())
                }),
            });
            got += 1;
        }
        if got == 0 {
            empty_fetches += 1;
            if empty_fetches >= 50 {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Deletes a test's stream (ignoring a stream that is not there).
pub async fn delete_stream(url: &str, stream: &str) {
    let js = connect(url).await;
    let _ = js.delete_stream(stream).await;
}
