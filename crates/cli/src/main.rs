//! The `autolog` binary: a thin command line over the app layer and the HTTP server.
//! It picks the store once (from --database-url), sets up logging and maps results to exit codes.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autolog_app::{Config, DataDir};
use autolog_server::{NatsOptions, RateLimit, ServeOptions, TlsFiles};
use clap::{Parser, Subcommand};

mod access;
mod bench;
mod chains;
mod dossier;
mod labels;
mod reference;
mod signals;
mod simulate;
mod store;
mod vault;

/// mimalloc, not glibc's malloc: glibc raises its mmap threshold after the first freed
/// Argon2id buffer (19 MiB per re-authentication), so later buffers come from the arenas
/// of whichever blocking threads ran them and stay there; an ingest of 300 simulated
/// patients peaked at 554 MiB that way, and at 48 MiB with a fixed threshold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "autolog",
    version,
    about = "Autolog: the chain-of-identity ledger for autologous cell therapy"
)]
struct Cli {
    /// Data directory: signing key and, without --database-url, the SQLite file.
    #[arg(
        long,
        global = true,
        env = "AUTOLOG_DATA_DIR",
        default_value = "./autolog-data"
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://...). Without it the embedded SQLite store is used.
    #[arg(
        long,
        global = true,
        env = "AUTOLOG_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// How many seconds ahead of this server's clock an event's occurred_at may be
    /// (0 to 86400); a later instant is refused as a skewed clock.
    #[arg(
        long,
        global = true,
        env = "AUTOLOG_CLOCK_SKEW_TOLERANCE_SECS",
        default_value_t = autolog_app::MAX_FUTURE_SKEW_SECONDS
    )]
    clock_skew_tolerance_secs: i64,
    /// The ISBT 128 FIN under which this Autolog issues COIs (e.g. A9999). Without it,
    /// enrolments must bring a COI assigned upstream.
    #[arg(long, global = true, env = "AUTOLOG_COI_ISSUER_FIN")]
    coi_issuer_fin: Option<String>,
    /// The personal-data vault's master key file: 32 raw bytes or 64 hex characters, mode
    /// 0600, kept away from the database and its backups. Without it (and without
    /// AUTOLOG_VAULT_KEY, the key itself in hex), `vault.key` in the data directory is used,
    /// generated on first start: fine for a quick start, not for production.
    #[arg(
        long,
        global = true,
        env = "AUTOLOG_VAULT_KEY_FILE",
        value_name = "FILE"
    )]
    vault_key_file: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "AUTOLOG_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, the checkpoint signing key and the database schema.
    Init,
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Generate a realistic network as NDJSON requests for `ingest` (deterministic per
    /// seed), with the injected faults in <OUT>.faults.ndjson.
    Simulate {
        #[arg(long)]
        patients: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The share of journeys (0 to 1) that carry one injected fault.
        #[arg(long, default_value_t = 0.0)]
        fault_rate: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Append newline-delimited JSON: each line one request body of POST /api/v1/events,
    /// or `{"endpoint": ..., "body": ...}` as `simulate` writes (docs/simulation.md).
    Ingest {
        /// The .ndjson file.
        file: PathBuf,
        /// How many chains' lines are appended at once (their appends share commits).
        /// Each chain's lines keep the file's order, and a line about anything else
        /// (reference data, set-up, several chains) waits for every line before it.
        /// Where two chains' lines contradict each other (one unit claimed by both), the
        /// verdicts follow the order they commit in, as from two sources at once: 1
        /// appends every line in file order.
        #[arg(long, default_value_t = autolog_app::DEFAULT_INGEST_LANES as u64,
              value_parser = clap::value_parser!(u64).range(1..=64))]
        lanes: u64,
    },
    /// Recompute every hash, stream chain, Merkle node, checkpoint root and signature.
    Verify {
        /// A checkpoint kept outside the database (the JSON of `GET
        /// /api/v1/checkpoints/latest`): the ledger must still hold its tree and root.
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<PathBuf>,
        /// The public key the trusted checkpoint is signed with (64 hex characters, or the
        /// JSON of `GET /api/v1/key`); without it, this data directory's key.
        #[arg(long, value_name = "FILE", requires = "trusted_checkpoint")]
        trusted_key: Option<PathBuf>,
    },
    /// A chain of identity as it stood at --valid-at, as known at --known-at (default now).
    Trace {
        /// The COI, in any of its forms (canonical, eye-readable, barcode).
        coi: String,
        #[arg(long)]
        valid_at: Option<String>,
        #[arg(long)]
        known_at: Option<String>,
        /// Print the whole answer as JSON (as GET /api/v1/chains/{coi}).
        #[arg(long)]
        json: bool,
    },
    /// The chains as they stand now (the chain projection), by COI: as GET /api/v1/chains.
    Chains(chains::ListArgs),
    /// What waits at a site: chains to collect, handoffs to receive, material there in
    /// progress and on hold (as GET /api/v1/sites/{site_id}/work).
    Work(chains::WorkArgs),
    /// Network reconciliation over every chain: open holds, unanswered handoffs, units on
    /// several chains, steps out of order, unresolved references. Exits 1 when not clean.
    Reconcile {
        /// Print the whole report as JSON (as GET /api/v1/reconciliation).
        #[arg(long)]
        json: bool,
    },
    /// Genealogy as of any moment: `backward <unit>` (to the source patient, collections,
    /// batch, lots, equipment) or `forward <lot>` (every batch, unit and patient made with
    /// it; `<material>/<lot>` when the lot number is not unique). Prints JSON.
    Genealogy {
        /// backward or forward
        #[arg(value_parser = ["backward", "forward"])]
        direction: String,
        /// A final unit identifier or DIN (backward), or a material lot (forward).
        id: String,
        #[arg(long)]
        valid_at: Option<String>,
        #[arg(long)]
        known_at: Option<String>,
    },
    /// Turnaround: vein-to-vein time and time per step, per chain and per product and site
    /// (median, 90th percentile), as of any moment. Prints JSON.
    Turnaround {
        #[arg(long)]
        product_code: Option<String>,
        #[arg(long)]
        valid_at: Option<String>,
        #[arg(long)]
        known_at: Option<String>,
    },
    /// Signals of master data failing per week, site, source system and product (never per
    /// patient): reconciliation failures, holds, identifier confusion, time-zone
    /// discrepancies, unmapped codes, cross-site inconsistencies, window breaches,
    /// temperature excursions, failed signatures (as GET /api/v1/signals).
    Signals(signals::SignalArgs),
    /// Retention: `report` lists, per chain, the policies that apply, when its records may be
    /// released for erasure, legal holds, and its status.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Electronic signatures: set a person's signing secret (read from stdin, one line;
    /// stored only as an Argon2id hash). Release, hold resolution and deviation closure are
    /// signed with the person's id and this secret.
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// Read models kept from the ledger (the chain projection): rebuild them from the ledger.
    Projections {
        #[command(subcommand)]
        command: ProjectionCommand,
    },
    /// Reference data: bulk import and export, and the alignment report.
    Reference {
        #[command(subcommand)]
        command: reference::ReferenceCommand,
    },
    /// The audit trail as JSON (as GET /api/v1/audit-trail): every value changed after first
    /// entry (old and new values, who, when, why) and a chain's signed reviews.
    AuditTrail {
        #[arg(long)]
        coi: Option<String>,
        /// Changes recorded at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Changes recorded at or before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        site_id: Option<String>,
    },
    /// The inspection dossier: `export` a chain as of any moment into one JSON file with
    /// every event's inclusion proof and a signed checkpoint; `verify` such a file with
    /// nothing but the public key (no database). docs/dossier.md.
    Dossier {
        #[command(subcommand)]
        command: dossier::DossierCommand,
    },
    /// Labels from the ledger: print (recorded first), show again as PDF, SVG or ZPL, list,
    /// verify by scan, void.
    Label {
        #[command(subcommand)]
        command: labels::LabelCommand,
    },
    /// Console accounts: create, grant and revoke site-scoped roles, unlock, list.
    User {
        #[command(subcommand)]
        command: access::UserCommand,
    },
    /// Source systems' API tokens: issue (shown once), revoke, list.
    Token {
        #[command(subcommand)]
        command: access::TokenCommand,
    },
    /// The personal-data vault: rotate its master key, erase a patient's identifying data
    /// (crypto-shredding) once retention allows.
    Vault {
        #[command(subcommand)]
        command: vault::VaultCommand,
    },
    /// Benchmarks on simulated networks, each scale on fresh temporary databases: ingest
    /// (batched, one request per event, over HTTP) against the plain-insert limit, chain
    /// reconstruction, genealogy, reconciliation, verify, memory and size (BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// The checkpoint signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// What becomes releasable for erasure, and when (ledger events are never deleted).
    Report {
        /// The date to judge against (default now).
        #[arg(long)]
        as_of: Option<String>,
        /// Only chains releasable within this many days of --as-of.
        #[arg(long)]
        within_days: Option<u32>,
        /// Print the whole report as JSON (as GET /api/v1/retention).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionCommand {
    /// Drop the chain and alert projections and fold the whole ledger into them again.
    Rebuild,
}

#[derive(Subcommand)]
enum SignerCommand {
    /// Set (or reset) a registered person's signing secret; the secret is read from stdin.
    SetSecret {
        /// The person's canonical id (a personnel record).
        person_id: String,
        /// Who sets it (an actor, person/<id>), for the record.
        #[arg(long)]
        set_by: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the public key (hex) and its key id.
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The bench logs warnings only by default: a line per appended event would be measured too.
    let quiet = matches!(cli.command, Command::Bench(_));
    init_logging(cli.log_json, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(json: bool, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `autolog serve`: where and how to serve.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUTOLOG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve `GET /metrics` (Prometheus/OpenMetrics text) on this address, apart from the
    /// API and without its sign-in: bind it to loopback or a monitoring network.
    #[arg(long, env = "AUTOLOG_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Seconds between checkpoints (signed only when the ledger grew).
    #[arg(long, default_value_t = 10)]
    checkpoint_interval_secs: u64,
    /// Serve HTTPS: the certificate chain (PEM, the server's certificate first).
    #[arg(
        long,
        env = "AUTOLOG_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Serve HTTPS: the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "AUTOLOG_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Requests per second allowed to each client address (0 turns the limit off).
    #[arg(long, env = "AUTOLOG_RATE_LIMIT_PER_SECOND", default_value_t = RateLimit::default().per_second)]
    rate_limit_per_second: u32,
    /// Requests a client address may send at once before the per-second limit applies.
    #[arg(
    long,
    env = "AUTOLOG_RATE_LIMIT_BURST",
    default_value_t = RateLimit::default().burst,
    value_parser = clap::value_parser!(u32).range(1..)
    )]
    rate_limit_burst: u32,
    /// A request's head must arrive within this many seconds; a keep-alive connection
    /// idle this long between requests is closed too (slow clients hold nothing).
    #[arg(long, env = "AUTOLOG_HEADER_READ_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout_secs: u64,
    /// Connections one client address may hold open at once; more are closed at once.
    #[arg(long, env = "AUTOLOG_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_connections_per_client: u64,
    /// Let webhooks go to loopback and private addresses (an on-premises receiver). By
    /// default only public addresses receive them, checked when registered and when sent.
    #[arg(long, env = "AUTOLOG_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
    /// Publish every committed event to NATS JetStream at this server
    /// (nats://host:port, several separated by commas): at least once, in ledger order.
    #[arg(
        long,
        env = "AUTOLOG_NATS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    nats_url: Option<String>,
    /// The subjects' first tokens: events go to <prefix>.events.<event type>
    /// [default: autolog].
    #[arg(
        long,
        env = "AUTOLOG_NATS_SUBJECT_PREFIX",
        value_name = "PREFIX",
        requires = "nats_url"
    )]
    nats_subject_prefix: Option<String>,
    /// The JetStream stream, created with subjects <prefix>.> when absent
    /// [default: AUTOLOG].
    #[arg(
        long,
        env = "AUTOLOG_NATS_STREAM",
        value_name = "STREAM",
        requires = "nats_url"
    )]
    nats_stream: Option<String>,
    /// Append each signed checkpoint, one JSON line, to DIR/checkpoints.jsonl: a copy kept
    /// outside the database (docs/dossier.md).
    #[arg(long, env = "AUTOLOG_WITNESS_DIR", value_name = "DIR")]
    witness_dir: Option<PathBuf>,
    /// Send each signed checkpoint to the witness at this base URL (another Autolog serving
    /// with --witness-for this instance's public key), with its consistency proof.
    #[arg(long, env = "AUTOLOG_WITNESS_URL", value_name = "URL")]
    witness_url: Option<String>,
    /// Witness the ledger with this public key (a file: 64 hex characters or the JSON of
    /// its GET /api/v1/key); repeat for several.
    #[arg(long, value_name = "KEY_FILE")]
    witness_for: Vec<PathBuf>,
    /// Seed a fresh (empty) data directory with the simulated demo network (a few dozen
    /// patients at every stage, one caught bag swap) and create the demo console account
    /// P-0001 with every role at `*`: its password and TOTP key are printed.
    #[arg(long)]
    demo: bool,
    /// The demo account's password (at least 12 characters); generated when absent.
    #[arg(
        long,
        env = "AUTOLOG_DEMO_PASSWORD",
        requires = "demo",
        hide_env_values = true
    )]
    demo_password: Option<String>,
}

/// `autolog serve`: checks TLS and NATS settings before listening, opens the store, seeds
/// the demo network when asked, and serves until a shutdown signal.
async fn serve(
    config: &Config,
    coi_issuer_fin: Option<&str>,
    skew: i64,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        listen,
        metrics_listen,
        checkpoint_interval_secs,
        tls_cert,
        tls_key,
        rate_limit_per_second,
        rate_limit_burst,
        header_read_timeout_secs,
        max_connections_per_client,
        allow_private_webhooks,
        nats_url,
        nats_subject_prefix,
        nats_stream,
        witness_dir,
        witness_url,
        witness_for,
        demo,
        demo_password,
    } = args;
    let origins = witness_for
        .iter()
        .map(|file| read_public_key(file))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    if let Some(files) = &tls {
        // Before listening: a certificate or key that cannot be used stops here.
        files.check().await?;
    }
    let nats = nats_url.map(|url| {
        let mut nats = NatsOptions::new(&url);
        if let Some(prefix) = nats_subject_prefix {
            nats.subject_prefix = prefix;
        }
        if let Some(stream) = nats_stream {
            nats.stream_name = stream;
        }
        nats
    });
    if let Some(nats) = &nats {
        // Before listening: a bad prefix or stream name stops here.
        nats.check()?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = ServeOptions {
        checkpoint_interval: Duration::from_secs(checkpoint_interval_secs.max(1)),
        tls,
        rate_limit: (rate_limit_per_second > 0).then_some(RateLimit {
            per_second: rate_limit_per_second,
            burst: rate_limit_burst,
        }),
        nats,
        header_read_timeout: Duration::from_secs(header_read_timeout_secs),
        max_connections_per_client: usize::try_from(max_connections_per_client)
            .unwrap_or(usize::MAX),
        ..ServeOptions::default()
    };
    let mut app = store::open(config)
        .await?
        .with_clock_skew_tolerance(skew)?
        .with_private_webhook_receivers(allow_private_webhooks);
    // The demo issues COIs under the example issuer's FIN unless told otherwise, so that a
    // newcomer can enrol a patient in the console (the simulated chains came with theirs).
    let coi_issuer_fin = coi_issuer_fin.or(demo.then_some(simulate::DEMO_COI_ISSUER_FIN));
    if let Some(fin) = coi_issuer_fin {
        app = app.with_coi_issuer(fin)?;
    }
    app.set_witnessing(autolog_app::WitnessSettings {
        dir: witness_dir,
        url: witness_url,
        origins,
    });
    if demo {
        simulate::seed_demo(&app, demo_password).await?;
    }
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let metrics_listener = match metrics_listen {
        Some(addr) => {
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            // Before the listening line, which says the server is ready.
            println!(
                "autolog metrics on http://{}/metrics",
                metrics.local_addr()?
            );
            Some(metrics)
        }
        None => None,
    };
    tracing::info!(listen = %bound, store = %config.store_description(), "autolog serving");
    // One plain line on stdout, so that scripts (and tests) can find the port of --listen
    // ...:0, then where the console is. A reader that has gone away (a script that read
    // the address and closed the pipe) must not stop the server: write errors are ignored.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "autolog listening on {scheme}://{bound}");
    let _ = writeln!(
        out,
        "autolog console: open {scheme}://{bound}/ in a browser to sign in"
    );
    let _ = out.flush();
    drop(out);
    autolog_server::serve_with_metrics(listener, metrics_listener, app, options, shutdown_signal())
        .await?;
    tracing::info!("autolog stopped");
    Ok(ExitCode::SUCCESS)
}

/// The projections against the ledger's fold (after the ledger itself verified): exit
/// code 1 lists each chain summary or alert row that differs.
async fn verify_projections(app: &autolog_app::Autolog) -> anyhow::Result<ExitCode> {
    let check = app.check_projections().await?;
    if check.differences.is_empty() {
        println!(
            "ok: chain projection equals the fold of the ledger for {} chains",
            check.chains
        );
        println!(
            "ok: alert projection equals the fold of the ledger for {} alerts",
            check.alerts
        );
        println!(
            "ok: signal projection equals the fold of the ledger for {} signals",
            check.signals
        );
        return Ok(ExitCode::SUCCESS);
    }
    for difference in &check.differences {
        println!("{difference}");
    }
    println!(
        "the projections differ from the ledger in {} places ({} chains, {} alerts, {} \
         signals; autolog projections rebuild makes them again from the ledger)",
        check.differences.len(),
        check.chains,
        check.alerts,
        check.signals
    );
    Ok(ExitCode::from(1))
}

/// `autolog verify`: the whole ledger, against a kept checkpoint when one is given; exit
/// code 1 names the first failure.
async fn verify(
    config: &Config,
    trusted_checkpoint: Option<&std::path::Path>,
    trusted_key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let app = store::open_existing(config).await?;
    let trusted = match trusted_checkpoint {
        Some(file) => Some(read_trusted(file, trusted_key, &app)?),
        None => None,
    };
    let show_progress = std::io::stderr().is_terminal();
    let mut last_report = 0u64;
    let started = std::time::Instant::now();
    let outcome = app
        .verify_against(trusted.as_ref().map(|(c, k)| (c, k)), |done, total| {
            if done >= last_report + 100_000 || (show_progress && done == total) {
                last_report = done;
                let mut err = std::io::stderr();
                let _ = writeln!(err, "verified {done}/{total} events");
            }
        })
        .await?;
    match outcome {
        Ok(report) => {
            println!("{}", report.summary_line());
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "the ledger verified in {seconds:.2} s ({:.0} events/s)",
                report.events as f64 / seconds.max(1e-9)
            );
            verify_projections(&app).await
        }
        Err(failure) => {
            println!("{failure}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `autolog key show`: the checkpoint signing key's public half and id.
fn show_key(config: &Config) -> anyhow::Result<ExitCode> {
    let key = DataDir::new(&config.data_dir).load_key()?;
    let public = key.verifying_key();
    println!("algorithm: Ed25519");
    println!("public key: {}", hex_encode(public.as_bytes()));
    println!(
        "key id: {}",
        autolog_domain::ledger::checkpoint::key_id(&public)
    );
    Ok(ExitCode::SUCCESS)
}

/// `autolog signer set-secret`: a person's e-signature secret, read from stdin.
async fn set_signing_secret(
    config: &Config,
    person_id: &str,
    set_by: &str,
) -> anyhow::Result<ExitCode> {
    autolog_domain::ledger::envelope::check_actor("set_by", set_by)?;
    let app = store::open_existing(config).await?;
    let mut secret = String::new();
    std::io::stdin().read_line(&mut secret)?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    app.set_signing_secret(person_id, secret, set_by).await?;
    println!("signing secret set for {person_id}");
    Ok(ExitCode::SUCCESS)
}

/// Where the data directory, database and vault key are, from the global options.
fn config_of(cli: &Cli) -> Config {
    Config {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        vault_key_file: cli.vault_key_file.clone(),
        // Only from the environment: a key on the command line would show in `ps`.
        vault_key_hex: std::env::var("AUTOLOG_VAULT_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = config_of(&cli);
    let skew = cli.clock_skew_tolerance_secs;
    match cli.command {
        Command::Init => init(&config).await,
        Command::Serve(args) => serve(&config, cli.coi_issuer_fin.as_deref(), skew, args).await,
        Command::Ingest { file, lanes } => {
            let app = store::open(&config)
                .await?
                .with_clock_skew_tolerance(skew)?;
            simulate::ingest(&app, &file, usize::try_from(lanes).unwrap_or(1)).await
        }
        Command::Simulate {
            patients,
            seed,
            fault_rate,
            out,
        } => simulate::simulate(patients, seed, fault_rate, &out),
        Command::Verify {
            trusted_checkpoint,
            trusted_key,
        } => {
            verify(
                &config,
                trusted_checkpoint.as_deref(),
                trusted_key.as_deref(),
            )
            .await
        }
        Command::Trace {
            coi,
            valid_at,
            known_at,
            json,
        } => {
            trace(
                &config,
                &coi,
                valid_at.as_deref(),
                known_at.as_deref(),
                json,
            )
            .await
        }
        Command::Chains(args) => {
            let app = store::open_existing(&config).await?;
            chains::list(&app, args).await
        }
        Command::Work(args) => {
            let app = store::open_existing(&config).await?;
            chains::work(&app, args).await
        }
        Command::Reconcile { json } => reconcile(&config, json).await,
        Command::Genealogy {
            direction,
            id,
            valid_at,
            known_at,
        } => {
            let app = store::open_existing(&config).await?;
            let (valid_at, known_at) = (valid_at.as_deref(), known_at.as_deref());
            if direction == "backward" {
                print_json(&app.genealogy_backward(&id, valid_at, known_at).await?)
            } else {
                print_json(&app.genealogy_forward(&id, valid_at, known_at).await?)
            }
        }
        Command::Turnaround {
            product_code,
            valid_at,
            known_at,
        } => {
            let app = store::open_existing(&config).await?;
            let (valid_at, known_at) = (valid_at.as_deref(), known_at.as_deref());
            print_json(
                &app.turnaround(product_code.as_deref(), valid_at, known_at)
                    .await?,
            )
        }
        Command::Signals(args) => {
            let app = store::open_existing(&config).await?;
            signals::run(&app, args).await
        }
        Command::Retention {
            command:
                RetentionCommand::Report {
                    as_of,
                    within_days,
                    json,
                },
        } => retention(&config, as_of.as_deref(), within_days, json).await,
        Command::Signer {
            command: SignerCommand::SetSecret { person_id, set_by },
        } => set_signing_secret(&config, &person_id, &set_by).await,
        Command::Projections {
            command: ProjectionCommand::Rebuild,
        } => {
            let app = store::open_existing(&config).await?;
            let position = app.rebuild_projections().await?;
            println!("projections rebuilt from the ledger up to position {position}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reference { command } => {
            let app = store::open(&config).await?;
            reference::run(&app, command).await
        }
        Command::Dossier { command } => dossier::run(&config, command).await,
        Command::AuditTrail {
            coi,
            from,
            to,
            actor,
            site_id,
        } => {
            let app = store::open_existing(&config).await?;
            let query = autolog_app::audit_trail::AuditTrailQuery {
                coi,
                from,
                to,
                actor,
                site_id,
            };
            print_json(&app.audit_trail(&query).await?)
        }
        Command::Label { command } => {
            let app = store::open_existing(&config).await?;
            labels::run(&app, command).await
        }
        Command::User { command } => {
            let app = store::open_existing(&config).await?;
            access::run_user(&app, command).await
        }
        Command::Token { command } => {
            let app = store::open_existing(&config).await?;
            access::run_token(&app, command).await
        }
        Command::Vault { command } => vault::run(&config, command).await,
        Command::Bench(args) => bench::run(args, cli.database_url.clone()).await,
        Command::Key {
            command: KeyCommand::Show,
        } => show_key(&config),
    }
}

/// `autolog init`: the data directory, its signing key and the database schema.
async fn init(config: &Config) -> anyhow::Result<ExitCode> {
    let key = DataDir::new(&config.data_dir).init()?;
    store::open_store(config).await?;
    let public = key.verifying_key();
    println!(
        "initialised {} ({}); checkpoint key id {}",
        config.data_dir.display(),
        config.store_description(),
        autolog_domain::ledger::checkpoint::key_id(&public)
    );
    Ok(ExitCode::SUCCESS)
}

/// A report's answer as pretty JSON on stdout.
fn print_json(answer: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(answer)?);
    Ok(ExitCode::SUCCESS)
}

/// `autolog trace`: a chain as of (`valid_at`, `known_at`), for people or as JSON.
async fn trace(
    config: &Config,
    coi: &str,
    valid_at: Option<&str>,
    known_at: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let app = store::open_existing(config).await?;
    let chain = app.chain(coi, valid_at, known_at).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&chain)?);
    } else {
        print_chain(&chain);
    }
    Ok(ExitCode::SUCCESS)
}

/// `autolog reconcile`: exit 1 when the network is not clean.
async fn reconcile(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let app = store::open_existing(config).await?;
    let report = app.reconciliation().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_reconciliation(&report);
    }
    Ok(if report.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `autolog retention report`.
async fn retention(
    config: &Config,
    as_of: Option<&str>,
    within_days: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let app = store::open_existing(config).await?;
    let report = app.retention_report(as_of, within_days).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_retention(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// A retention report for people: one line per chain.
fn print_retention(report: &autolog_app::Retention) {
    println!("retention as of {}", report.as_of);
    for c in &report.chains {
        println!(
            "{}  {}  releasable {}  {}  legal holds {}",
            c.coi,
            c.product_code,
            c.releasable_at.as_deref().unwrap_or("-"),
            serde_json::json!(c.status).as_str().unwrap_or("-"),
            serde_json::json!(c.legal_holds)
        );
    }
}

/// A chain for people: the summary, then one line per event.
fn print_chain(chain: &autolog_app::ChainAnswer) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    println!(
        "COI {}  patient {}  product {}",
        chain.coi,
        or_dash(&chain.patient_key),
        or_dash(&chain.product_code)
    );
    println!(
        "state {}  custodian {}",
        chain.state,
        or_dash(&chain.custodian_site_id)
    );
    for hold in &chain.holds {
        println!(
            "ON HOLD {} ({}) since {}: {}",
            text(&hold["hold_id"]),
            text(&hold["rule"]),
            text(&hold["placed_at"]),
            hold["findings"]
        );
    }
    println!("as of valid {}  known {}", chain.valid_at, chain.known_at);
    for unit in &chain.units {
        println!("unit DIN {}", unit.din);
    }
    for e in &chain.timeline {
        let when = &e.occurred_at_display;
        let local = when.site_local.as_ref().or(when.local.as_ref());
        let mark = if e.superseded_by.is_some() {
            "  [superseded]"
        } else if e.event.get("corrects").is_some() {
            "  [correction]"
        } else {
            ""
        };
        println!(
            "#{:<3} {}  ({} UTC)  {}  recorded {}{mark}",
            e.event["seq"],
            local.map_or("-", String::as_str),
            when.utc,
            text(&e.event["body"]["type"]),
            text(&e.event["recorded_at"]),
        );
    }
}

/// The reconciliation report for people: one section per finding kind.
fn print_reconciliation(report: &autolog_app::Reconciliation) {
    println!(
        "{} chains as of {}: {}",
        report.chains,
        report.as_of,
        if report.clean {
            "clean"
        } else {
            "findings below"
        }
    );
    for hold in &report.open_holds {
        println!(
            "open hold {} on {} at {} since {}: {}",
            hold.hold_id,
            hold.coi,
            hold.site_id.as_deref().unwrap_or("-"),
            hold.placed_at,
            serde_json::json!(hold.findings)
        );
    }
    for h in &report.unanswered_handoffs {
        println!(
            "unanswered handoff {} of {}: {} -> {}, expected by {}",
            h.handoff_id, h.coi, h.from_site_id, h.destination_site_id, h.expected_arrival_by
        );
    }
    for u in &report.units_on_several_chains {
        println!(
            "unit {} seen on chains {}",
            u.unit,
            serde_json::json!(u.chains)
        );
    }
    for o in &report.steps_out_of_order {
        println!(
            "out of order on {}: {} ({}) {}",
            o.coi, o.event_type, o.event_id, o.rule
        );
    }
    for r in &report.unresolved_references {
        println!(
            "unresolved on {}: {} {} = {}: {}",
            r.coi, r.event_type, r.field, r.value, r.rule
        );
    }
    for c in &report.unmapped_codes {
        println!(
            "unmapped code {} {} {} seen {} times",
            c.system, c.kind, c.code, c.count
        );
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The trusted checkpoint and the key it must verify with: `--trusted-key`'s (64 hex
/// characters, or the JSON of `GET /api/v1/key`), else the data directory's own.
fn read_trusted(
    checkpoint_file: &std::path::Path,
    key_file: Option<&std::path::Path>,
    app: &autolog_app::Autolog,
) -> anyhow::Result<(
    autolog_domain::ledger::checkpoint::Checkpoint,
    autolog_domain::VerifyingKey,
)> {
    let text = std::fs::read_to_string(checkpoint_file)
        .with_context(|| format!("cannot read {}", checkpoint_file.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", checkpoint_file.display()))?;
    let checkpoint = autolog_domain::ledger::checkpoint::checkpoint_from_json(&value)
        .map_err(|e| anyhow::anyhow!("{}: {e}", checkpoint_file.display()))?;
    let key = match key_file {
        Some(file) => read_public_key(file)?,
        None => public_key_of_hex(&app.public_key().0)?,
    };
    Ok((checkpoint, key))
}

/// A public key file: 64 hex characters, or the JSON of `GET /api/v1/key`.
pub(crate) fn read_public_key(
    file: &std::path::Path,
) -> anyhow::Result<autolog_domain::VerifyingKey> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let key_hex = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v
            .get("public_key")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{}: no public_key", file.display()))?,
        Err(_) => text.trim().to_string(),
    };
    public_key_of_hex(&key_hex)
}

fn public_key_of_hex(key_hex: &str) -> anyhow::Result<autolog_domain::VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("the trusted key must be 32 bytes as 64 hex characters"))?;
    autolog_domain::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("the trusted key is not an Ed25519 public key: {e}"))
}
