//! `autolog bench`: the benchmark suite on realistic data, on a fresh temporary database per
//! scale. Per scale, the simulator's network (reference data and every patient's journey)
//! is ingested through the full path (parse, resolve, reconcile, hash, append, project):
//!
//! - **batched**, in process: every line, in order, in arrays of up to [`BATCH_EVENTS`]
//!   events. This ledger is the one the reads, `verify` and the size are measured on.
//! - **per request**, in process: one line (one request) per append, on a second fresh
//!   database, for at most `--sample-secs`.
//! - **HTTP**: one line per `POST /api/v1/events` against a real server on a random port,
//!   `--http-clients` clients at once (each chain's lines in order on one client), each
//!   request authenticated as its event's actor; a third fresh database, `--sample-secs`.
//!
//! The limit is measured in the same run, in the same database: plain inserts of the
//! ledger's own rows into a table of the same columns (no index, no hash, no projection),
//! one transaction per row (against per request and HTTP) and in batches of the same size
//! (against batched), with the store's own durability settings (SQLite WAL with
//! `synchronous=FULL`, PostgreSQL with synchronous commit). Then chain reconstruction as of
//! now and as known at a past moment (p50, p99), genealogy forward from the most used lot,
//! network reconciliation, `verify`, peak memory and database size per event.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use anyhow::{anyhow, bail, Context};
use autolog_app::{Autolog, DataDir, PasswordWork};
use autolog_domain::access::{EVERY_SITE, ROLES};
use autolog_domain::Event;
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Events per request of the batched ingest and per transaction of the batched limit.
pub const BATCH_EVENTS: usize = 100;
/// Chains sampled for the reconstruction latencies.
const CHAIN_SAMPLES: usize = 200;
/// The bench's own accounts' password (they live only in the temporary database).
const PASSWORD: &str = "autolog bench password, temporary database only";
/// The SQLite file in each temporary directory.
const SQLITE_FILE: &str = "autolog.db";
/// Who sets up the bench's accounts and tokens, for the record.
const ADMIN: &str = "person/P-BENCH-ADMIN";

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// sqlite (a temporary file) or postgres (a temporary database on the server of
    /// --database-url) [default: postgres when --database-url is given, else sqlite].
    #[arg(long, value_parser = ["sqlite", "postgres"])]
    pub backend: Option<String>,
    /// Scales, in patients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub patients: Vec<usize>,
    /// The simulator's seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Senders of the batched ingest at once (each chain's lines on one of them, in order;
    /// their requests share commits): enough to keep the cores busy while some wait on
    /// the database or an Argon2id check. 1 sends every batch in turn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub batch_clients: u64,
    /// Concurrent HTTP clients (32: the issue's goal is stated for 32).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub http_clients: u64,
    /// At most this many seconds for each one-request-per-event ingest (in process, HTTP)
    /// and each plain-insert limit; the batched ingest always loads everything.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_secs: u64,
}

/// Each scale in turn, its table printed as soon as it is measured.
async fn run_scales(
    args: &BenchArgs,
    backend: &str,
    server_url: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut scales = Vec::new();
    for &patients in &args.patients {
        progress(&format!("{patients} patients on {backend}: starting"));
        let scale = run_scale(args, backend, server_url, patients).await?;
        print_table(&scale);
        scales.push(scale);
    }
    Ok(scales)
}

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM; names the one that came.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// The temporary PostgreSQL databases created and not dropped yet (server, name): those
/// left when a run ends early are dropped by [`drop_leftover_databases`].
static TEMPORARY_DATABASES: std::sync::Mutex<Vec<(String, String)>> =
    std::sync::Mutex::new(Vec::new());

fn temporary_databases() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    TEMPORARY_DATABASES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drops every temporary database still listed (the bench's own, by name).
async fn drop_leftover_databases() {
    let leftovers: Vec<(String, String)> = temporary_databases().drain(..).collect();
    for (server, name) in leftovers {
        progress(&format!("dropping the temporary database {name}"));
        if let Err(e) = admin_execute(
            &server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await
        {
            progress(&format!("could not drop {name}: {e:#}; drop it by hand"));
        }
    }
}

/// Runs the bench; `database_url` is the global --database-url (the PostgreSQL server).
pub async fn run(args: BenchArgs, database_url: Option<String>) -> anyhow::Result<ExitCode> {
    let backend = match (args.backend.as_deref(), &database_url) {
        (Some("postgres"), None) => {
            bail!("--backend postgres needs --database-url postgres://... (the server on which temporary databases are created)")
        }
        (Some(b), _) => b.to_string(),
        (None, Some(_)) => "postgres".to_string(),
        (None, None) => "sqlite".to_string(),
    };
    if args.patients.is_empty() || args.patients.contains(&0) {
        bail!("--patients: give one or more scales above 0, e.g. 1000,10000");
    }
    let started = Clock::now();
    // Whatever ends the run early (a failure, or Ctrl-C), its temporary databases go.
    let outcome = tokio::select! {
        outcome = run_scales(&args, &backend, database_url.as_deref()) => outcome,
        signal = interrupted() => Err(anyhow!("interrupted ({signal})")),
    };
    drop_leftover_databases().await;
    let scales = outcome?;
    let report = json!({
        "tool": "autolog bench",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": backend,
        "seed": args.seed,
        "batch_clients": args.batch_clients,
        "http_clients": args.http_clients,
        "sample_secs": args.sample_secs,
        "batch_events": BATCH_EVENTS,
        "machine": machine(),
        "started_at": autolog_domain::Instant::now().to_string(),
        "wall_seconds": started.elapsed().as_secs_f64(),
        "scales": scales,
    });
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        progress(&format!("figures written to {}", path.display()));
    }
    println!("total wall time {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

// ---------------------------------------------------------------------------------------
// The workload

/// What a simulated line asks for (see `docs/simulation.md`).
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `POST /api/v1/events`: one event or a batch.
    Events,
    /// `POST /api/v1/chains`: an enrolment (one `chain.enrolled` event).
    Enrol,
    /// Ingest-only set-up: a person's e-signature secret (kept beside the ledger).
    SigningSecret {
        person_id: String,
        secret: String,
        set_by: String,
    },
}

/// One request of the simulation: its body and what the bench needs to know about it.
#[derive(Clone)]
struct Line {
    kind: Kind,
    /// The request body (for set-up lines, empty).
    body: String,
    events: usize,
    /// The actor of its (first) event: who sends it over HTTP.
    actor: Option<String>,
    /// Lines with the same key go, in order, through the same HTTP client: a chain's lines.
    key: String,
}

struct Workload {
    lines: Vec<Line>,
    /// The first line after the prelude that is not about one chain only (1-based), if any:
    /// such a workload cannot be split between senders.
    not_one_chain: Option<usize>,
    /// Lines before the first chain request: the reference data and set-up, loaded
    /// untimed before each one-request-per-event run.
    prelude: usize,
    events: usize,
    /// Chains (`coi/...` streams), in order of first appearance.
    chains: Vec<String>,
    /// The `<material>/<lot>` consumed by the most batches, and how many.
    busiest_lot: Option<(String, usize)>,
    /// Site ids (streams `site/<id>`): a source system's token names its sites.
    sites: Vec<String>,
}

fn events_of(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

fn workload(lines: Vec<String>) -> anyhow::Result<Workload> {
    let mut out = Vec::with_capacity(lines.len());
    let mut events = 0usize;
    let mut prelude = None;
    let mut not_one_chain: Option<usize> = None;
    let mut chains = Vec::new();
    let mut seen_chain: HashMap<String, ()> = HashMap::new();
    let mut lot_uses: HashMap<String, usize> = HashMap::new();
    let mut sites = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("simulated line {}: not JSON", i + 1))?;
        let (kind, body) = match value.get("endpoint").and_then(Value::as_str) {
            None => (Kind::Events, value),
            Some("POST /api/v1/events") => (Kind::Events, value["body"].clone()),
            Some("POST /api/v1/chains") => (Kind::Enrol, value["body"].clone()),
            Some("signing-secret") => {
                let kind = Kind::SigningSecret {
                    person_id: text(&value, "person_id"),
                    secret: text(&value, "secret"),
                    set_by: text(&value, "set_by"),
                };
                out.push(Line {
                    kind,
                    body: String::new(),
                    events: 0,
                    actor: None,
                    key: String::new(),
                });
                continue;
            }
            Some(other) => bail!("simulated line {}: unknown endpoint {other}", i + 1),
        };
        let items: Vec<&Value> = if kind == Kind::Enrol {
            vec![&body]
        } else {
            events_of(&body)
        };
        let mut on_chain = false;
        for e in &items {
            let s = if kind == Kind::Enrol {
                autolog_domain::StreamId::chain(text(e, "coi")).into()
            } else {
                text(e, "stream")
            };
            if s.starts_with("coi/") {
                on_chain = true;
                if seen_chain.insert(s.clone(), ()).is_none() {
                    chains.push(s.clone());
                }
            }
            if let Some(site) = s.strip_prefix("site/") {
                if !sites.iter().any(|x| x == site) {
                    sites.push(site.to_string());
                }
            }
            if e["body"]["type"] == json!("batch.material_consumed") {
                let data = &e["body"]["data"];
                let lot = format!("{}/{}", text(data, "material"), text(data, "lot"));
                *lot_uses.entry(lot).or_default() += 1;
            }
        }
        let first = items.first().copied().unwrap_or(&Value::Null);
        let key = if kind == Kind::Enrol {
            autolog_domain::StreamId::chain(text(first, "coi")).into()
        } else if let Some(coi) = first["body"]["data"]["coi"].as_str() {
            autolog_domain::StreamId::chain(coi).into()
        } else {
            text(first, "stream")
        };
        if on_chain && prelude.is_none() {
            prelude = Some(out.len());
        }
        // After the reference data, the concurrent batched ingest gives each chain's lines
        // to one sender: a line must then be about that one chain only.
        let one_chain = key.starts_with("coi/")
            && items.iter().all(|e| {
                kind == Kind::Enrol
                    || text(e, "stream") == key
                    || e["body"]["data"]["coi"].as_str() == key.strip_prefix("coi/")
            });
        if prelude.is_some() && !one_chain && not_one_chain.is_none() {
            not_one_chain = Some(i + 1);
        }
        events += items.len();
        out.push(Line {
            kind,
            events: items.len(),
            actor: first["actor"].as_str().map(str::to_string),
            key,
            body: body.to_string(),
        });
    }
    let busiest_lot = lot_uses
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    Ok(Workload {
        not_one_chain,
        prelude: prelude.unwrap_or(out.len()),
        lines: out,
        events,
        chains,
        busiest_lot,
        sites,
    })
}

/// The simulated network (no injected faults): request lines, reference data first.
fn simulate(patients: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let options = autolog_simulate::SimulateOptions::new(patients, seed, 0.0);
    let simulation = autolog_simulate::generate(&options).map_err(|e| anyhow!("simulate: {e}"))?;
    Ok(simulation.lines)
}

/// Open batches a chain's next line may go to: a line joins the first open batch after its
/// chain's previous line that has room, so each chain stays in order and a batch holds at
/// most one line per chain (a request's rules read the ledger as it was before the
/// request). The oldest is sent when more are open.
const OPEN_BATCHES: usize = 16;

/// The requests of a batched ingest, each with the lines it holds (in send order).
/// Reference data (the prelude) goes in order, consecutive lines merged up to
/// [`BATCH_EVENTS`] events and split where a stream repeats. Chain lines go as a source
/// system batching its patients' events would send them: merged across chains, each
/// chain's lines in order (see [`OPEN_BATCHES`]). An enrolment (its own endpoint) is sent on
/// its own when it comes: it opens its chain, so no earlier line depends on it.
fn batches(lines: &[Line], prelude: usize) -> anyhow::Result<Vec<(Option<String>, Vec<usize>)>> {
    struct Open {
        events: Vec<Value>,
        lines: Vec<usize>,
    }
    let flush = |open: Open, out: &mut Vec<(Option<String>, Vec<usize>)>| {
        if !open.lines.is_empty() {
            out.push((Some(Value::Array(open.events).to_string()), open.lines));
        }
    };
    let mut out = Vec::new();
    // The prelude: in order.
    let mut current = Open {
        events: Vec::new(),
        lines: Vec::new(),
    };
    let mut keys: HashSet<&str> = HashSet::new();
    for (i, line) in lines.iter().enumerate().take(prelude) {
        let mergeable = line.kind == Kind::Events;
        if !current.lines.is_empty()
            && (!mergeable
                || current.events.len() + line.events > BATCH_EVENTS
                || keys.contains(line.key.as_str()))
        {
            flush(
                std::mem::replace(
                    &mut current,
                    Open {
                        events: Vec::new(),
                        lines: Vec::new(),
                    },
                ),
                &mut out,
            );
            keys.clear();
        }
        if !mergeable {
            out.push((None, vec![i]));
            continue;
        }
        keys.insert(line.key.as_str());
        current.events.extend(events_of_body(&line.body)?);
        current.lines.push(i);
    }
    flush(current, &mut out);
    // The chains: a window of open batches.
    let mut open: std::collections::VecDeque<Open> = std::collections::VecDeque::new();
    let mut base = 0usize;
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, line) in lines.iter().enumerate().skip(prelude) {
        if line.kind != Kind::Events {
            out.push((None, vec![i]));
            continue;
        }
        let mut g = last
            .get(line.key.as_str())
            .map_or(base, |l| (l + 1).max(base));
        loop {
            while g - base >= open.len() {
                open.push_back(Open {
                    events: Vec::new(),
                    lines: Vec::new(),
                });
            }
            let batch = open.get(g - base).ok_or_else(|| anyhow!("batch window"))?;
            if batch.lines.is_empty() || batch.events.len() + line.events <= BATCH_EVENTS {
                break;
            }
            g += 1;
        }
        let batch = open
            .get_mut(g - base)
            .ok_or_else(|| anyhow!("batch window"))?;
        batch.events.extend(events_of_body(&line.body)?);
        batch.lines.push(i);
        last.insert(line.key.as_str(), g);
        while open.len() > OPEN_BATCHES {
            if let Some(front) = open.pop_front() {
                flush(front, &mut out);
            }
            base += 1;
        }
    }
    for batch in open {
        flush(batch, &mut out);
    }
    Ok(out)
}

fn events_of_body(body: &str) -> anyhow::Result<Vec<Value>> {
    Ok(match serde_json::from_str(body)? {
        Value::Array(list) => list,
        other => vec![other],
    })
}

// ---------------------------------------------------------------------------------------
// Temporary databases

/// A fresh store in a temporary place, removed when dropped (PostgreSQL: by [`Fresh::drop_database`]).
struct Fresh {
    app: Arc<Autolog>,
    sqlite: Option<Arc<SqliteStore>>,
    postgres: Option<(Arc<PostgresStore>, String, String)>,
    dir: tempfile::TempDir,
}

/// A bench instance as production runs one: with a vault key (a fresh one, in memory),
/// so that the API tokens the HTTP run issues are sealed as they would be.
fn bench_app(
    store: Arc<dyn autolog_store::Store>,
    key: autolog_domain::SigningKey,
) -> anyhow::Result<Autolog> {
    let vault = autolog_app::VaultKey::generate().map_err(|e| anyhow!("vault key: {e}"))?;
    Ok(Autolog::from_parts(store, key).with_vault_key(vault))
}

impl Fresh {
    async fn create(backend: &str, server_url: Option<&str>) -> anyhow::Result<Fresh> {
        let dir = tempfile::Builder::new()
            .prefix("autolog-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let key = DataDir::new(dir.path()).init()?;
        if backend == "postgres" {
            let server = server_url.ok_or_else(|| anyhow!("no PostgreSQL URL"))?;
            let name = format!("autolog_bench_{}", autolog_domain::Uuid::now_v7().simple());
            // Listed first, so that a run ending at any moment drops it (IF EXISTS).
            temporary_databases().push((server.to_string(), name.clone()));
            admin_execute(server, &format!("CREATE DATABASE {name}")).await?;
            progress(&format!(
                "temporary database {name} (dropped when the bench ends)"
            ));
            let url = with_database(server, &name);
            let store = Arc::new(
                PostgresStore::connect(&url)
                    .await
                    .with_context(|| format!("cannot open the temporary database {name}"))?,
            );
            let app = Arc::new(bench_app(store.clone(), key)?);
            Ok(Fresh {
                app,
                sqlite: None,
                postgres: Some((store, server.to_string(), name)),
                dir,
            })
        } else {
            let store = Arc::new(
                SqliteStore::open(&dir.path().join(SQLITE_FILE))
                    .await
                    .context("cannot open the temporary SQLite database")?,
            );
            let app = Arc::new(bench_app(store.clone(), key)?);
            Ok(Fresh {
                app,
                sqlite: Some(store),
                postgres: None,
                dir,
            })
        }
    }

    async fn plain_insert(&self, rows: &[Event]) -> anyhow::Result<()> {
        match (&self.sqlite, &self.postgres) {
            (Some(s), _) => s.plain_insert_baseline(rows).await?,
            (_, Some((p, _, _))) => p.plain_insert_baseline(rows).await?,
            _ => bail!("no store"),
        }
        Ok(())
    }

    /// Bytes the database takes on disk (SQLite: the file, its WAL and shared memory).
    async fn size_bytes(&self) -> anyhow::Result<u64> {
        if let Some((_, server, name)) = &self.postgres {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(server)
                .await?;
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size($1)")
                .bind(name)
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            return Ok(u64::try_from(size).unwrap_or(0));
        }
        let base = self.dir.path().join(SQLITE_FILE);
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut path = base.clone().into_os_string();
            path.push(suffix);
            if let Ok(meta) = std::fs::metadata(PathBuf::from(path)) {
                total += meta.len();
            }
        }
        Ok(total)
    }

    async fn drop_database(self) {
        let Fresh { app, postgres, .. } = self;
        drop(app);
        if let Some((store, server, name)) = postgres {
            drop(store);
            match admin_execute(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
            {
                Ok(()) => temporary_databases().retain(|(_, listed)| *listed != name),
                // Still listed: tried again when the bench ends.
                Err(e) => progress(&format!("could not drop {name} yet: {e:#}")),
            }
        }
    }
}

async fn admin_execute(server: &str, sql: &str) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(server)
        .await
        .context("cannot reach the PostgreSQL server of --database-url")?;
    sqlx::query(sql).execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// The server URL with its database (the URL's path) replaced by `name`.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base.get(scheme_end..).and_then(|rest| rest.find('/')) {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

// ---------------------------------------------------------------------------------------
// Measurements

#[derive(Default)]
struct Ingest {
    requests: usize,
    events: usize,
    refused: usize,
    failed: usize,
    seconds: f64,
    complete: bool,
    first_refusals: Vec<String>,
    /// Ledger rows written while measured: the requested events and Autolog's own (DIN
    /// links, lot consumptions, flags, alerts), and access audit events.
    ledger_rows: u64,
    /// Batches refused as a whole, then sent again line by line.
    refused_batches: usize,
    first_batch_refusals: Vec<String>,
    /// Senders at once (batched ingest, HTTP); 1 otherwise.
    clients: usize,
    /// The Argon2id work (re-authentication of signatures) done while measured.
    argon2: PasswordWork,
}

impl Ingest {
    fn rate(&self) -> f64 {
        rate(self.events, self.seconds)
    }

    /// The rate with the Argon2id time taken out (an estimate): its seconds spread over
    /// the senders that could run it at once (at most one per core).
    fn rate_without_argon2(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let at_once = self.clients.clamp(1, cores) as f64;
        let seconds = self.seconds - self.argon2.seconds / at_once;
        rate(self.events, seconds.max(self.seconds * 0.01))
    }

    /// Notes the Argon2id work done since `before`.
    fn argon2_since(&mut self, app: &Autolog, before: PasswordWork) {
        let now = app.password_work();
        self.argon2 = PasswordWork {
            computations: now.computations.saturating_sub(before.computations),
            seconds: (now.seconds - before.seconds).max(0.0),
        };
    }

    fn refuse(&mut self, reason: String) {
        self.refused += 1;
        if self.first_refusals.len() < 3 {
            self.first_refusals.push(reason);
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "events": self.events,
            "refused_requests": self.refused,
            "failed_requests": self.failed,
            "seconds": self.seconds,
            "events_per_second": self.rate(),
            "ledger_rows": self.ledger_rows,
            "ledger_rows_per_second": rate(usize::try_from(self.ledger_rows).unwrap_or(0), self.seconds),
            "whole_simulation": self.complete,
            "first_refusals": self.first_refusals,
            "refused_batches": self.refused_batches,
            "first_batch_refusals": self.first_batch_refusals,
            "clients": self.clients.max(1),
            "argon2id_computations": self.argon2.computations,
            "argon2id_seconds": self.argon2.seconds,
            "events_per_second_without_argon2id": self.rate_without_argon2(),
        })
    }
}

fn rate(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

struct Limit {
    rows: usize,
    seconds: f64,
}

impl Limit {
    fn rate(&self) -> f64 {
        rate(self.rows, self.seconds)
    }

    fn to_json(&self) -> Value {
        json!({"rows": self.rows, "seconds": self.seconds, "rows_per_second": self.rate()})
    }
}

/// Whether an error is a refusal of the request (counted) rather than a failure (stops).
fn is_refusal(e: &autolog_app::AppError) -> bool {
    !matches!(
        e,
        autolog_app::AppError::Storage(_)
            | autolog_app::AppError::Busy(_)
            | autolog_app::AppError::Integrity(_)
            | autolog_app::AppError::Config(_)
    )
}

/// Sends one line in process; refusals are counted, failures stop the bench. Returns the
/// events it appended.
async fn send_in_process(app: &Autolog, line: &Line, result: &mut Ingest) -> anyhow::Result<usize> {
    let answer = match &line.kind {
        Kind::Events => app
            .append_json(line.body.as_bytes())
            .await
            .map(|r| r.appended()),
        Kind::Enrol => app
            .enrol(line.body.as_bytes())
            .await
            .map(|(_, r)| r.appended()),
        Kind::SigningSecret {
            person_id,
            secret,
            set_by,
        } => app
            .set_signing_secret(person_id, secret, set_by)
            .await
            .map(|()| 0),
    };
    match answer {
        Ok(n) => Ok(n),
        Err(e) if is_refusal(&e) => {
            result.refuse(e.to_string());
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every line of `lines`, event lines merged in batches; a refused batch is sent again
/// line by line. With `past_at`, the moment half the requests were done is noted there.
async fn ingest_batched(
    app: &Autolog,
    workload: &Workload,
    lines: std::ops::Range<usize>,
    past_at: Option<&mut Option<String>>,
) -> anyhow::Result<Ingest> {
    let slice = workload
        .lines
        .get(lines.clone())
        .ok_or_else(|| anyhow!("line range"))?;
    let started = Clock::now();
    let mut result = send_batches(app, slice, workload.prelude.min(slice.len()), past_at).await?;
    app.checkpoint_if_grown().await?;
    result.seconds = started.elapsed().as_secs_f64();
    result.complete = true;
    Ok(result)
}

/// The whole simulation with `clients` senders at once: the prelude first, in order, then
/// each chain's lines on one sender (as over HTTP), each sender's lines merged in batches
/// and sent in turn. The senders' requests share commits (group commit). The moment half
/// of the first sender's requests were done is noted in `past_at`.
async fn ingest_batched_concurrently(
    app: &Arc<Autolog>,
    workload: &Workload,
    clients: usize,
    past_at: &mut Option<String>,
) -> anyhow::Result<Ingest> {
    if let Some(line) = workload.not_one_chain {
        bail!("simulated line {line} comes after the reference data but is not about one chain only: its order with other chains' lines matters, so the batched ingest cannot split the lines between senders; run with --batch-clients 1");
    }
    let started = Clock::now();
    let prelude = workload.prelude.min(workload.lines.len());
    let mut result = send_batches(app, &workload.lines[..prelude], prelude, None).await?;
    let mut queues: Vec<Vec<Line>> = (0..clients.max(1)).map(|_| Vec::new()).collect();
    let mut assigned: HashMap<&str, usize> = HashMap::new();
    for line in workload.lines.iter().skip(prelude) {
        let next = assigned.len() % queues.len();
        let client = *assigned.entry(line.key.as_str()).or_insert(next);
        if let Some(queue) = queues.get_mut(client) {
            queue.push(line.clone());
        }
    }
    let mut senders = tokio::task::JoinSet::new();
    for (k, queue) in queues.into_iter().enumerate() {
        let app = app.clone();
        senders.spawn(async move {
            let mut noted = None;
            let slot = if k == 0 { Some(&mut noted) } else { None };
            let sent = send_batches(&app, &queue, 0, slot).await;
            sent.map(|ingest| (ingest, noted))
        });
    }
    // The first sender to fail stops the others (dropping the set aborts them).
    while let Some(joined) = senders.join_next().await {
        let (sent, noted) = joined.map_err(|e| anyhow!("a batch sender stopped: {e}"))??;
        if noted.is_some() {
            *past_at = noted;
        }
        result.requests += sent.requests;
        result.events += sent.events;
        result.refused += sent.refused;
        result.refused_batches += sent.refused_batches;
        for reason in sent.first_refusals {
            if result.first_refusals.len() < 3 {
                result.first_refusals.push(reason);
            }
        }
        for reason in sent.first_batch_refusals {
            if result.first_batch_refusals.len() < 3 {
                result.first_batch_refusals.push(reason);
            }
        }
    }
    app.checkpoint_if_grown().await?;
    result.seconds = started.elapsed().as_secs_f64();
    result.complete = true;
    Ok(result)
}

/// Sends `slice` (its first `prelude` lines in order, the rest merged in batches, see
/// [`batches`]); a refused batch is sent again line by line. With `past_at`, the moment
/// half the requests were done is noted there.
async fn send_batches(
    app: &Autolog,
    slice: &[Line],
    prelude: usize,
    past_at: Option<&mut Option<String>>,
) -> anyhow::Result<Ingest> {
    let requests = batches(slice, prelude)?;
    let half = requests.len() / 2;
    let mut result = Ingest::default();
    let mut past_at = past_at;
    for (k, (body, held)) in requests.iter().enumerate() {
        if k == half {
            if let Some(slot) = past_at.as_deref_mut() {
                *slot = Some(autolog_domain::Instant::now().to_string());
            }
        }
        let own: Vec<&Line> = held.iter().filter_map(|i| slice.get(*i)).collect();
        let Some(body) = body else {
            for line in own {
                result.requests += 1;
                result.events += send_in_process(app, line, &mut result).await?;
            }
            continue;
        };
        result.requests += 1;
        match app.append_json(body.as_bytes()).await {
            Ok(r) => result.events += r.appended(),
            Err(e) if is_refusal(&e) => {
                result.refused_batches += 1;
                if result.first_batch_refusals.len() < 3 {
                    result.first_batch_refusals.push(e.to_string());
                }
                for line in own {
                    result.requests += 1;
                    result.events += send_in_process(app, line, &mut result).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(result)
}

/// Lines after the prelude, one request each, until done or the deadline.
async fn ingest_per_request(
    app: &Autolog,
    workload: &Workload,
    budget: Duration,
) -> anyhow::Result<Ingest> {
    let mut result = Ingest::default();
    let started = Clock::now();
    let mut all = true;
    for line in workload.lines.iter().skip(workload.prelude) {
        if started.elapsed() >= budget {
            all = false;
            break;
        }
        result.requests += 1;
        result.events += send_in_process(app, line, &mut result).await?;
    }
    result.seconds = started.elapsed().as_secs_f64();
    result.complete = all;
    Ok(result)
}

/// What an HTTP request carries to authenticate as its event's actor.
#[derive(Clone)]
enum Credential {
    Session { cookie: String, csrf: String },
    Token(String),
}

/// Accounts (every role at every site, signed in) for the persons and tokens for the
/// systems that send the sampled lines.
async fn credentials(
    app: &Autolog,
    workload: &Workload,
) -> anyhow::Result<HashMap<String, Credential>> {
    // A person's password is their e-signature secret: a signer keeps the one the
    // simulation set, so that the signatures its lines carry re-authenticate.
    let signing_secrets: HashMap<&str, &str> = workload
        .lines
        .iter()
        .filter_map(|l| match &l.kind {
            Kind::SigningSecret {
                person_id, secret, ..
            } => Some((person_id.as_str(), secret.as_str())),
            _ => None,
        })
        .collect();
    let mut out = HashMap::new();
    for line in workload.lines.iter().skip(workload.prelude) {
        let Some(actor) = &line.actor else { continue };
        if out.contains_key(actor) {
            continue;
        }
        let credential = if let Some(person) = actor.strip_prefix("person/") {
            let password = signing_secrets.get(person).copied().unwrap_or(PASSWORD);
            let created = app.create_user(person, password, ADMIN).await?;
            let secret = created.totp_secret;
            for role in ROLES {
                app.grant_role(person, role.as_str(), EVERY_SITE, ADMIN)
                    .await?;
            }
            let key = autolog_app::totp_key(&secret)?;
            let code = autolog_app::totp_code(
                &key,
                autolog_app::totp_step(autolog_domain::Instant::now()),
            )?;
            let signed_in = app.sign_in(person, password, &code, None).await?;
            Credential::Session {
                cookie: format!("autolog_session={}", signed_in.session),
                csrf: signed_in.csrf,
            }
        } else if let Some(system) = actor.strip_prefix("system/") {
            let issued = app
                .issue_token(system, &workload.sites, None, ADMIN)
                .await?;
            let token = issued.token;
            Credential::Token(format!("Bearer {token}"))
        } else {
            continue;
        };
        out.insert(actor.clone(), credential);
    }
    Ok(out)
}

/// A person's request as the console sends it: a person's events carry the console source,
/// so a simulated source id `{system, id}` becomes `{console, system/id}` (still unique),
/// and so does a correction naming one.
fn as_console_request(body: &str) -> anyhow::Result<String> {
    fn to_console(source: &mut Value) {
        let system = source
            .get("system")
            .and_then(Value::as_str)
            .map(str::to_string);
        let id = source
            .get("source_event_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (Some(system), Some(id)) = (system, id) {
            if system != autolog_app::CONSOLE_SOURCE {
                source["system"] = json!(autolog_app::CONSOLE_SOURCE);
                source["source_event_id"] = json!(format!("{system}/{id}"));
            }
        }
    }
    let mut value: Value = serde_json::from_str(body)?;
    let events: Vec<&mut Value> = match &mut value {
        Value::Array(list) => list.iter_mut().collect(),
        one => vec![one],
    };
    for event in events {
        if let Some(source) = event.get_mut("source") {
            to_console(source);
        }
        if let Some(corrects) = event.get_mut("corrects").filter(|c| c.is_object()) {
            to_console(corrects);
        }
    }
    Ok(value.to_string())
}

/// Lines after the prelude over HTTP, `clients` at once, each chain on one client.
async fn ingest_http(
    app: Arc<Autolog>,
    workload: &Workload,
    clients: usize,
    budget: Duration,
) -> anyhow::Result<Ingest> {
    let creds = credentials(&app, workload).await?;
    type Request = (&'static str, String, usize, Option<Credential>);
    let mut queues: Vec<Vec<Request>> = (0..clients).map(|_| Vec::new()).collect();
    let mut assigned: HashMap<&str, usize> = HashMap::new();
    for line in workload.lines.iter().skip(workload.prelude) {
        let path = match line.kind {
            Kind::Events => "/api/v1/events",
            Kind::Enrol => "/api/v1/chains",
            // Set-up is the operator's, not the API's: done with the prelude.
            Kind::SigningSecret { .. } => continue,
        };
        let next = assigned.len() % clients;
        let client = *assigned.entry(line.key.as_str()).or_insert(next);
        let credential = line.actor.as_ref().and_then(|a| creds.get(a)).cloned();
        let body = match credential {
            Some(Credential::Session { .. }) => as_console_request(&line.body)?,
            _ => line.body.clone(),
        };
        if let Some(queue) = queues.get_mut(client) {
            queue.push((path, body, line.events, credential));
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = autolog_server::ServeOptions {
        rate_limit: None,
        ..autolog_server::ServeOptions::default()
    };
    let store = app.store().clone();
    let before = store.head().await?.position;
    let server = tokio::spawn(autolog_server::serve(listener, app, options, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(120))
        .build()?;
    let started = Clock::now();
    let mut tasks = Vec::new();
    for queue in queues {
        let http = http.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = Ingest {
                complete: true,
                ..Ingest::default()
            };
            for (path, body, events, credential) in queue {
                if started.elapsed() >= budget {
                    result.complete = false;
                    break;
                }
                let mut request = http
                    .post(format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .body(body);
                match credential {
                    Some(Credential::Session { cookie, csrf }) => {
                        request = request
                            .header("cookie", cookie)
                            .header("x-csrf-token", csrf)
                    }
                    Some(Credential::Token(bearer)) => {
                        request = request.header("authorization", bearer)
                    }
                    None => {}
                }
                result.requests += 1;
                match request.send().await {
                    Ok(answer) if answer.status().is_success() => result.events += events,
                    Ok(answer) if answer.status().is_client_error() => {
                        let status = answer.status();
                        let text = answer.text().await.unwrap_or_default();
                        result.refuse(format!("{status}: {}", truncate(&text, 300)));
                    }
                    Ok(answer) => {
                        result.failed += 1;
                        let status = answer.status();
                        let text = answer.text().await.unwrap_or_default();
                        result.refuse(format!("{status}: {}", truncate(&text, 300)));
                    }
                    Err(e) => {
                        result.failed += 1;
                        result.refuse(format!("request failed: {e}"));
                    }
                }
            }
            result
        }));
    }
    let mut total = Ingest {
        complete: true,
        ..Ingest::default()
    };
    for task in tasks {
        let r = task.await?;
        total.requests += r.requests;
        total.events += r.events;
        total.refused += r.refused;
        total.failed += r.failed;
        total.complete &= r.complete;
        for reason in r.first_refusals {
            if total.first_refusals.len() < 3 {
                total.first_refusals.push(reason);
            }
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total.ledger_rows = store.head().await?.position.saturating_sub(before);
    let _ = stop.send(());
    server.await??;
    Ok(total)
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Plain inserts of the ledger's own rows (read page by page; only the inserts are timed):
/// `per_transaction` rows per transaction, for at most `budget` of inserting.
async fn plain_limit(
    fresh: &Fresh,
    per_transaction: usize,
    budget: Duration,
) -> anyhow::Result<Limit> {
    let store = fresh.app.store().clone();
    let mut after = 0i64;
    let mut inserted = 0;
    let mut spent = Duration::ZERO;
    'pages: loop {
        let rows = store.scan(after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        let events: Vec<Event> = rows.into_iter().filter_map(|r| r.event.ok()).collect();
        for chunk in events.chunks(per_transaction.max(1)) {
            if spent >= budget {
                break 'pages;
            }
            let started = Clock::now();
            fresh.plain_insert(chunk).await?;
            spent += started.elapsed();
            inserted += chunk.len();
        }
    }
    Ok(Limit {
        rows: inserted,
        seconds: spent.as_secs_f64(),
    })
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted
            .get(rank - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    fn to_json(&self) -> Value {
        json!({
            "samples": self.0.len(),
            "p50_ms": self.percentile(0.50),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
        })
    }
}

/// A seeded sample of `n` of `items` (all when fewer).
fn sample(items: &[String], n: usize, seed: u64) -> Vec<&String> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut picked: Vec<&String> = items.iter().collect();
    // Partial Fisher-Yates.
    let take = n.min(picked.len());
    for i in 0..take {
        let span = (picked.len() - i) as u64;
        let j = i + (next() % span) as usize;
        picked.swap(i, j);
    }
    picked.truncate(take);
    picked
}

async fn chain_latencies(
    app: &Autolog,
    cois: &[&String],
    known_at: Option<&str>,
) -> anyhow::Result<Latencies> {
    let mut out = Vec::with_capacity(cois.len());
    for stream in cois {
        let coi = stream.trim_start_matches("coi/");
        let started = Clock::now();
        match app.chain(coi, None, known_at).await {
            // As known at a past moment, a chain enrolled later is not there yet: an answer.
            Ok(_) | Err(autolog_app::AppError::NotFound { .. }) => {}
            Err(e) => return Err(anyhow!("chain {coi}: {e}")),
        }
        out.push(started.elapsed());
    }
    Ok(Latencies(out))
}

// ---------------------------------------------------------------------------------------
// Memory

/// Resets the peak resident set size of this process (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size of this process in bytes (`VmHWM`, what getrusage's
/// `ru_maxrss` reports on Linux), since the last reset.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
    });
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu": cpu,
        "memory": memory,
        "os": std::env::consts::OS,
    })
}

// ---------------------------------------------------------------------------------------
// One scale

async fn run_scale(
    args: &BenchArgs,
    backend: &str,
    server_url: Option<&str>,
    patients: usize,
) -> anyhow::Result<Value> {
    reset_peak_rss();
    let started = Clock::now();
    let budget = Duration::from_secs(args.sample_secs);

    let generated = Clock::now();
    let lines = simulate(patients, args.seed)?;
    let work = workload(lines)?;
    let generate_seconds = generated.elapsed().as_secs_f64();
    progress(&format!(
        "{patients} patients: {} lines, {} events ({} of reference data before the first chain), {} chains; generated in {generate_seconds:.1} s",
        work.lines.len(),
        work.events,
        work.prelude,
        work.chains.len()
    ));

    // 1. Batched, in process: the whole simulation; the ledger for everything after.
    let main = Fresh::create(backend, server_url).await?;
    let mut past_at = None;
    progress("batched ingest (whole simulation)");
    let batch_clients = usize::try_from(args.batch_clients).unwrap_or(1);
    let argon2_before = main.app.password_work();
    let mut batched = if batch_clients > 1 {
        ingest_batched_concurrently(&main.app, &work, batch_clients, &mut past_at).await?
    } else {
        ingest_batched(&main.app, &work, 0..work.lines.len(), Some(&mut past_at)).await?
    };
    batched.ledger_rows = main.app.store().head().await?.position;
    batched.clients = batch_clients;
    batched.argon2_since(&main.app, argon2_before);
    progress(&format!(
        "batched: {} events in {:.1} s ({:.0}/s), {} refused requests",
        batched.events,
        batched.seconds,
        batched.rate(),
        batched.refused
    ));
    let head = main.app.store().head().await?;
    let ledger_events = head.position;
    let database_bytes = main.size_bytes().await?;

    progress("plain-insert limit, batched");
    let limit_batched = plain_limit(&main, BATCH_EVENTS, budget).await?;

    // 2. Reads on the full ledger.
    progress("chain reconstruction");
    let cois = sample(&work.chains, CHAIN_SAMPLES, args.seed);
    let chain_now = chain_latencies(&main.app, &cois, None).await?;
    let chain_past = chain_latencies(&main.app, &cois, past_at.as_deref()).await?;

    let (genealogy, reconciliation, verify) =
        full_ledger_reads(&main.app, &work, ledger_events).await?;
    let projection = projection_reads(&main.app, ledger_events).await?;
    main.drop_database().await;

    let (per_request, limit_single) = measure_per_request(args, backend, server_url, &work).await?;
    let http = measure_http(args, backend, server_url, &work).await?;
    let ratio = |ingest: f64, limit: f64| if limit > 0.0 { ingest / limit } else { 0.0 };
    Ok(json!({
        "patients": patients,
        "lines": work.lines.len(),
        "events_simulated": work.events,
        "chains": work.chains.len(),
        "generate_seconds": generate_seconds,
        "ingest": {
            "batched_in_process": batched.to_json(),
            "per_request_in_process": per_request.to_json(),
            "per_request_http": http.to_json(),
        },
        "limit": {
            "plain_insert_batched": limit_batched.to_json(),
            "plain_insert_one_row_per_transaction": limit_single.to_json(),
        },
        "ratio_to_limit": {
            "batched_in_process": ratio(batched.rate(), limit_batched.rate()),
            "per_request_in_process": ratio(per_request.rate(), limit_single.rate()),
            "per_request_http": ratio(http.rate(), limit_single.rate()),
        },
        "ratio_to_limit_without_argon2id": {
            "batched_in_process": ratio(batched.rate_without_argon2(), limit_batched.rate()),
            "per_request_in_process": ratio(per_request.rate_without_argon2(), limit_single.rate()),
            "per_request_http": ratio(http.rate_without_argon2(), limit_single.rate()),
        },
        "chain_reconstruction": {
            "as_of_now": chain_now.to_json(),
            "as_known_at_past": chain_past.to_json(),
            "past_known_at": past_at,
        },
        "genealogy_forward": genealogy,
        "reconciliation": reconciliation,
        "chain_projection": projection,
        "verify": verify,
        "ledger_events": ledger_events,
        "database_bytes": database_bytes,
        "database_bytes_per_event": if ledger_events > 0 { database_bytes as f64 / ledger_events as f64 } else { 0.0 },
        "peak_rss_bytes": peak_rss_bytes(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    }))
}

/// Genealogy of the busiest lot, the network reconciliation and verify, on the full ledger.
async fn full_ledger_reads(
    app: &Autolog,
    work: &Workload,
    ledger_events: u64,
) -> anyhow::Result<(Value, Value, Value)> {
    progress("genealogy forward");
    let genealogy = match &work.busiest_lot {
        Some((stream, uses)) => {
            let lot = stream.trim_start_matches("lot/");
            let t = Clock::now();
            let answer = app.genealogy_forward(lot, None, None).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            json!({
                "lot": lot,
                "consumptions": uses,
                "batches": answer.batches.len(),
                "patients_who_received": answer.patients_who_received.len(),
                "ms": ms,
            })
        }
        None => Value::Null,
    };

    progress("network reconciliation");
    let t = Clock::now();
    let report = app.reconciliation().await?;
    let reconciliation = json!({
        "chains": report.chains,
        "clean": report.clean,
        "open_holds": report.open_holds.len(),
        "ms": t.elapsed().as_secs_f64() * 1000.0,
    });

    progress("verify");
    let t = Clock::now();
    let verified = app.verify(|_, _| {}).await?;
    let verify_seconds = t.elapsed().as_secs_f64();
    let verify = json!({
        "events": ledger_events,
        "ok": verified.is_ok(),
        "seconds": verify_seconds,
        "events_per_second": rate(ledger_events as usize, verify_seconds),
    });
    if let Err(failure) = &verified {
        progress(&format!("verify FAILED: {failure}"));
    }
    let mut verify = verify;
    verify["hashing_limit"] = hashing_limit(app).await?;
    Ok((genealogy, reconciliation, verify))
}

/// What verify cannot beat: SHA-256 over events' canonical bytes, in memory on one core
/// (the first thousand events, hashed again and again for half a second).
async fn hashing_limit(app: &Autolog) -> anyhow::Result<Value> {
    progress("verify: hashing limit");
    let sample = app.store().scan(0, 1_000).await?;
    let bytes: Vec<Vec<u8>> = sample
        .iter()
        .filter_map(|row| row.event.as_ref().ok())
        .map(Event::canonical_bytes)
        .collect();
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mean = bytes.iter().map(Vec::len).sum::<usize>() / bytes.len();
    let t = Clock::now();
    let mut hashed = 0usize;
    while t.elapsed() < Duration::from_millis(500) {
        for b in &bytes {
            std::hint::black_box(Sha256::digest(b));
        }
        hashed += bytes.len();
    }
    Ok(json!({
        "mean_event_bytes": mean,
        "events_per_second_one_core": rate(hashed, t.elapsed().as_secs_f64()),
    }))
}

/// Rounds of listings per site sampled.
const SITE_ROUNDS: usize = 5;

/// The chain projection on the full ledger: its rebuild against a scan of the same ledger
/// (what the store reads at the most, the limit), then a site's chains and its work queue
/// for every site, against folding one chain (`chain(coi)` above) and every chain
/// (reconciliation).
async fn projection_reads(app: &Autolog, ledger_events: u64) -> anyhow::Result<Value> {
    progress("chain projection: scan limit");
    let t = Clock::now();
    let (mut after, mut scanned) = (0, 0usize);
    loop {
        let page = app.store().scan(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        scanned += page.len();
    }
    let scan_seconds = t.elapsed().as_secs_f64();
    progress("chain projection: rebuild");
    let t = Clock::now();
    app.rebuild_projections().await?;
    let rebuild_seconds = t.elapsed().as_secs_f64();
    let everywhere = [autolog_domain::access::Grant {
        role: autolog_domain::access::Role::Auditor,
        site_id: autolog_domain::access::EVERY_SITE.to_string(),
    }];
    let mut sites = std::collections::BTreeSet::new();
    let mut filter = autolog_app::ChainFilter {
        limit: Some(1_000),
        ..Default::default()
    };
    let mut chains = 0;
    loop {
        let page = app.chains(&everywhere, &filter).await?;
        chains += page.chains.len();
        sites.extend(page.chains.iter().flat_map(|c| c.involved.iter().cloned()));
        match page.next_after {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    progress(&format!(
        "chain projection: {} sites' chains and work",
        sites.len()
    ));
    let (mut listed, mut queued) = (Vec::new(), Vec::new());
    for _ in 0..SITE_ROUNDS {
        for site in &sites {
            let by_site = autolog_app::ChainFilter {
                site_id: Some(site.clone()),
                ..Default::default()
            };
            let t = Clock::now();
            app.chains(&everywhere, &by_site).await?;
            listed.push(t.elapsed());
            let t = Clock::now();
            app.site_work(&everywhere, site, None).await?;
            queued.push(t.elapsed());
        }
    }
    Ok(json!({
        "chains": chains,
        "sites": sites.len(),
        "scan_limit": {
            "rows": scanned,
            "seconds": scan_seconds,
            "rows_per_second": rate(scanned, scan_seconds),
        },
        "rebuild": {
            "events": ledger_events,
            "seconds": rebuild_seconds,
            "events_per_second": rate(ledger_events as usize, rebuild_seconds),
        },
        "site_chains_first_page": Latencies(listed).to_json(),
        "site_work": Latencies(queued).to_json(),
    }))
}

/// The verify rows: its rate, against the scan's and SHA-256's in the same run.
fn print_verify(v: &Value, scan: f64) {
    let verify = float_of(&v["events_per_second"]);
    let hashing = float_of(&v["hashing_limit"]["events_per_second_one_core"]);
    let share = |limit: f64| {
        if limit > 0.0 {
            100.0 * verify / limit
        } else {
            0.0
        }
    };
    println!(
        "{:<38} {:>12} {:>14.0} {:>12}",
        "verify, whole ledger (events/s)",
        count_of(&v["events"]),
        verify,
        if v["ok"] == json!(true) {
            format!("ok, {:.0}% of scan", share(scan))
        } else {
            "FAILED".to_string()
        }
    );
    println!(
        "{:<38} {:>12} {:>14.0} {:>12}",
        "SHA-256 of the events, one core (ev/s)",
        format!(
            "{} B mean",
            count_of(&v["hashing_limit"]["mean_event_bytes"])
        ),
        hashing,
        format!("verify {:.1}%", share(hashing))
    );
}

/// One request per event, in process, on a fresh store (reference data first), and the
/// plain-insert limit of one row per transaction in the same database.
async fn measure_per_request(
    args: &BenchArgs,
    backend: &str,
    server_url: Option<&str>,
    work: &Workload,
) -> anyhow::Result<(Ingest, Limit)> {
    let budget = Duration::from_secs(args.sample_secs);
    progress(&format!(
        "one request per event, in process (at most {} s)",
        args.sample_secs
    ));
    let single = Fresh::create(backend, server_url).await?;
    ingest_batched(&single.app, work, 0..work.prelude, None).await?;
    let before = single.app.store().head().await?.position;
    let argon2_before = single.app.password_work();
    let mut per_request = ingest_per_request(&single.app, work, budget).await?;
    per_request.ledger_rows = single.app.store().head().await?.position - before;
    per_request.argon2_since(&single.app, argon2_before);
    progress(&format!(
        "per request: {} events in {:.1} s ({:.0}/s), {} refused",
        per_request.events,
        per_request.seconds,
        per_request.rate(),
        per_request.refused
    ));
    progress("plain-insert limit, one row per transaction");
    let limit_single = plain_limit(&single, 1, budget).await?;
    single.drop_database().await;

    Ok((per_request, limit_single))
}

/// One request per event over HTTP, N clients, on a fresh store.
async fn measure_http(
    args: &BenchArgs,
    backend: &str,
    server_url: Option<&str>,
    work: &Workload,
) -> anyhow::Result<Ingest> {
    let budget = Duration::from_secs(args.sample_secs);
    progress(&format!(
        "HTTP, {} clients (at most {} s)",
        args.http_clients, args.sample_secs
    ));
    let served = Fresh::create(backend, server_url).await?;
    ingest_batched(&served.app, work, 0..work.prelude, None).await?;
    let clients = usize::try_from(args.http_clients).unwrap_or(1);
    let argon2_before = served.app.password_work();
    let mut http = ingest_http(served.app.clone(), work, clients, budget).await?;
    http.clients = clients;
    // Sign-ins included: the bench's accounts sign in before the measured requests.
    http.argon2_since(&served.app, argon2_before);
    progress(&format!(
        "HTTP: {} events in {:.1} s ({:.0}/s), {} refused, {} failed",
        http.events,
        http.seconds,
        http.rate(),
        http.refused,
        http.failed
    ));
    served.drop_database().await;

    Ok(http)
}

// ---------------------------------------------------------------------------------------
// The table

/// A figure of the bench's JSON (0 when absent).
fn float_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// A count of the bench's JSON (0 when absent).
fn count_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn print_table(scale: &Value) {
    println!();
    println!(
        "autolog bench: {} patients, {} events ledger, {} chains (wall {:.1} s)",
        count_of(&scale["patients"]),
        count_of(&scale["ledger_events"]),
        count_of(&scale["chains"]),
        float_of(&scale["wall_seconds"])
    );
    println!(
        "{:<38} {:>12} {:>14} {:>12}",
        "ingest (full path)", "events", "events/s", "vs limit"
    );
    let rows = [
        (
            "batched, in process",
            "batched_in_process",
            "plain_insert_batched",
        ),
        (
            "one per request, in process",
            "per_request_in_process",
            "plain_insert_one_row_per_transaction",
        ),
        (
            "one per request, HTTP",
            "per_request_http",
            "plain_insert_one_row_per_transaction",
        ),
    ];
    for (label, key, _) in rows {
        let i = &scale["ingest"][key];
        let clients = count_of(&i["clients"]);
        let label = if clients > 1 {
            format!("{label}, {clients} clients")
        } else {
            label.to_string()
        };
        println!(
            "{:<38} {:>12} {:>14.0} {:>11.1}%",
            label,
            count_of(&i["events"]),
            float_of(&i["events_per_second"]),
            float_of(&scale["ratio_to_limit"][key]) * 100.0
        );
        println!(
            "{:<38} {:>12} {:>14.0} {:>11.1}%",
            "  without Argon2id (estimate)",
            format!("{:.1} s", float_of(&i["argon2id_seconds"])),
            float_of(&i["events_per_second_without_argon2id"]),
            float_of(&scale["ratio_to_limit_without_argon2id"][key]) * 100.0
        );
    }
    for (label, key) in [
        ("limit: plain insert, batched", "plain_insert_batched"),
        (
            "limit: plain insert, 1 row per tx",
            "plain_insert_one_row_per_transaction",
        ),
    ] {
        let l = &scale["limit"][key];
        println!(
            "{:<38} {:>12} {:>14.0} {:>12}",
            label,
            count_of(&l["rows"]),
            float_of(&l["rows_per_second"]),
            "100%"
        );
    }
    println!(
        "{:<38} {:>12} {:>14} {:>12}",
        "reads", "samples", "p50 ms", "p99 ms"
    );
    let p = &scale["chain_projection"];
    for (label, latencies) in [
        (
            "chain(coi) as of now",
            &scale["chain_reconstruction"]["as_of_now"],
        ),
        (
            "chain(coi) as known at a past moment",
            &scale["chain_reconstruction"]["as_known_at_past"],
        ),
        (
            "site's chains, first 100 (projection)",
            &p["site_chains_first_page"],
        ),
        ("site's work queue (projection)", &p["site_work"]),
    ] {
        println!(
            "{:<38} {:>12} {:>14.2} {:>12.2}",
            label,
            count_of(&latencies["samples"]),
            float_of(&latencies["p50_ms"]),
            float_of(&latencies["p99_ms"])
        );
    }
    let g = &scale["genealogy_forward"];
    println!(
        "{:<38} {:>12} {:>14.1}",
        "genealogy forward, busiest lot (ms)",
        format!("{} batches", count_of(&g["batches"])),
        float_of(&g["ms"])
    );
    let r = &scale["reconciliation"];
    println!(
        "{:<38} {:>12} {:>14.1}",
        "reconciliation, all chains (ms)",
        format!("{} chains", count_of(&r["chains"])),
        float_of(&r["ms"])
    );
    let rebuild = float_of(&p["rebuild"]["events_per_second"]);
    let scan = float_of(&p["scan_limit"]["rows_per_second"]);
    println!(
        "{:<38} {:>12} {:>14.0} {:>12}",
        "projection rebuild (events/s)",
        format!("{} chains", count_of(&p["chains"])),
        rebuild,
        format!(
            "{:.1}% of scan",
            if scan > 0.0 {
                100.0 * rebuild / scan
            } else {
                0.0
            }
        )
    );
    println!(
        "{:<38} {:>12} {:>14.0}",
        "ledger scan, the read limit (rows/s)",
        count_of(&p["scan_limit"]["rows"]),
        scan
    );
    print_verify(&scale["verify"], scan);
    println!(
        "peak RSS {:.1} MiB; database {:.1} MiB, {:.0} bytes per event",
        float_of(&scale["peak_rss_bytes"]) / 1_048_576.0,
        float_of(&scale["database_bytes"]) / 1_048_576.0,
        float_of(&scale["database_bytes_per_event"])
    );
}
