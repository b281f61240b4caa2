//! `autolog simulate`, `autolog ingest` (with its progress bar) and the seeding of
//! `autolog serve --demo`: thin wrappers over `autolog_simulate` and the app's ingest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use autolog_app::{Autolog, IngestReport};
use autolog_simulate::{generate, SimulateOptions, Simulation};
use indicatif::{ProgressBar, ProgressStyle};

/// The seed of the demo network: the same demo for everyone.
pub const DEMO_SEED: u64 = 20_260_301;
/// Patients in the demo network.
pub const DEMO_PATIENTS: usize = 48;
/// Who creates the demo account, for the record.
const DEMO_ADMIN: &str = "person/P-0001";
/// The demo console account: a registered person of the simulated network.
pub const DEMO_PERSON: &str = "P-0001";

/// `autolog simulate`: writes the requests to `out` and the faults to `<out>.faults.ndjson`.
pub fn simulate(
    patients: usize,
    seed: u64,
    fault_rate: f64,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let simulation = generate(&SimulateOptions::new(patients, seed, fault_rate))?;
    let mut text = simulation.lines.join("\n");
    text.push('\n');
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    let faults = faults_path(out);
    std::fs::write(&faults, simulation.faults_ndjson())
        .with_context(|| format!("cannot write {}", faults.display()))?;
    println!(
        "{} requests for {} patients ({} faults injected) in {:.1} s: {} and {}",
        simulation.lines.len(),
        patients,
        simulation.faults.len(),
        started.elapsed().as_secs_f64(),
        out.display(),
        faults.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `<out>.faults.ndjson`.
pub fn faults_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".faults.ndjson");
    PathBuf::from(name)
}

fn bar(len: u64) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {percent:>3}% {binary_bytes}/{binary_total_bytes} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `autolog ingest FILE`, with a progress bar on a terminal and the summary.
pub async fn ingest(app: &Autolog, file: &Path, lanes: usize) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let progress = bar(len);
    let report = app
        .ingest_with_progress(file, lanes, &|done| progress.set_position(done))
        .await;
    progress.finish_and_clear();
    let report = report?;
    print_report(&report);
    println!("in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &IngestReport) {
    for refused in &report.refused {
        println!("line {}: {}", refused.line, refused.reason);
    }
    if !report.duplicate_lines.is_empty() {
        let lines: Vec<String> = report
            .duplicate_lines
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "duplicates (already recorded, nothing written): lines {}",
            lines.join(", ")
        );
    }
    println!("{}", report.summary_line());
}

/// The FIN under which a demo server issues COIs when none is configured (the example
/// network's issuer; the simulated chains carry COIs of their own, under S9999).
pub const DEMO_COI_ISSUER_FIN: &str = "A9999";

/// The demo network, "now"-relative so that every stage is current: enrolments over the
/// last 75 days, nothing later than now, one bag swap caught at manufacturing.
pub fn demo_simulation() -> anyhow::Result<Simulation> {
    let now = jiff::Timestamp::now();
    let start = now
        .checked_sub(jiff::SignedDuration::from_hours(75 * 24))
        .context("clock out of range")?;
    let mut options = SimulateOptions::new(DEMO_PATIENTS, DEMO_SEED, 0.0);
    options.start = start;
    options.enrolment_days = 72;
    options.until = Some(now);
    options.bag_swap = true;
    Ok(generate(&options)?)
}

/// Seeds a fresh data directory for `serve --demo` and creates the demo account. Refuses a
/// ledger that already holds events.
pub async fn seed_demo(app: &Autolog, password: Option<String>) -> anyhow::Result<()> {
    let head = app.store().head().await?;
    if head.position > 0 {
        anyhow::bail!(
            "--demo seeds a fresh data directory, and this one already holds {} events; \
             use another --data-dir (or --database-url), or serve without --demo",
            head.position
        );
    }
    let simulation = demo_simulation()?;
    eprintln!(
        "seeding the demo network: {} requests, {} patients",
        simulation.lines.len(),
        DEMO_PATIENTS
    );
    let report = app.ingest_lines(&simulation.lines).await?;
    eprintln!("{}", report.summary_line());
    let password = match password {
        Some(p) => p,
        None => random_password()?,
    };
    let created = app.create_user(DEMO_PERSON, &password, DEMO_ADMIN).await?;
    for role in autolog_domain::access::ROLES {
        app.grant_role(
            DEMO_PERSON,
            role.as_str(),
            autolog_domain::access::EVERY_SITE,
            DEMO_ADMIN,
        )
        .await?;
    }
    println!(
        "demo network seeded: {} chains at every stage, one bag swap on hold",
        simulation.chains.len()
    );
    println!("demo console account: {DEMO_PERSON} (every role at *)");
    println!("  password: {password}");
    println!(
        "  TOTP key (shown once; add it to an authenticator app): {}",
        created.totp_secret
    );
    match totp_qr(DEMO_PERSON, &created.totp_secret) {
        Some(qr) => println!("  or scan it with the app:\n{qr}"),
        None => println!("  (the key does not fit a QR code; type it into the app)"),
    }
    println!(
        "  sign in: open the console address below in a browser, or POST /api/v1/session {{\"person_id\": \"{DEMO_PERSON}\", \"password\": ..., \"totp\": ...}}"
    );
    Ok(())
}

/// The `otpauth://` URI of a TOTP key (what authenticator apps scan: SHA-1, 6 digits,
/// 30 s), as a QR code drawn with Unicode half blocks, dark on light.
fn totp_qr(person_id: &str, key: &str) -> Option<String> {
    let uri = format!(
        "otpauth://totp/Autolog:{person_id}?secret={key}&issuer=Autolog&algorithm=SHA1&digits=6&period=30"
    );
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom_fill(&mut bytes)?;
    Ok(format!("demo-{}", hex_lower(&bytes)))
}

fn getrandom_fill(bytes: &mut [u8]) -> anyhow::Result<()> {
    getrandom::fill(bytes).map_err(|e| anyhow::anyhow!("no randomness for a password: {e}"))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
