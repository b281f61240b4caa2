//! What the CLI's integration tests share: the `autolog` binary on a data directory or
//! database, a running `autolog serve` that is killed when dropped, accounts and sign-in.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use autolog_store_conformance::harness::Target;

pub const BIN: &str = env!("CARGO_BIN_EXE_autolog");

/// The `autolog` binary on this data directory and, for PostgreSQL, this database; quiet
/// logs, and no setting inherited from the environment that would change what it does.
pub fn command(data_dir: &Path, target: &Target) -> Command {
    let mut c = sqlite_command(data_dir);
    if let Some(url) = target.database_url() {
        c.arg("--database-url").arg(url);
    }
    c
}

/// The `autolog` binary on this data directory and its embedded SQLite store.
pub fn sqlite_command(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data_dir)
        .env("AUTOLOG_LOG", "warn")
        .env_remove("AUTOLOG_COI_ISSUER_FIN")
        .env_remove("AUTOLOG_DATABASE_URL");
    c
}

/// Runs `autolog <args>` on this data directory's SQLite store and returns what it did.
pub fn autolog(data_dir: &Path, args: &[&str]) -> std::process::Output {
    sqlite_command(data_dir)
        .args(args)
        .output()
        .expect("run autolog")
}

/// A running `autolog serve`; killed (SIGKILL) and reaped when dropped, so that a failing
/// test leaves no server behind.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `autolog serve --listen 127.0.0.1:0 <args>` and reads the address it printed.
pub async fn start_server(data_dir: &Path, target: &Target, args: &[&str]) -> Server {
    let mut child = command(data_dir, target)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start autolog serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(120), line).await;
    let mut server = Server {
        child,
        base: String::new(),
    };
    let Ok(Ok(line)) = line else {
        server.kill();
        panic!("autolog serve printed no address within 120 s");
    };
    let Some(base) = line.trim().strip_prefix("autolog listening on ") else {
        server.kill();
        panic!("unexpected first line from autolog serve: {line:?}");
    };
    server.base = base.to_string();
    server
}

/// Gives a registered person an account with every role, with `autolog user create` and
/// `autolog user grant`, as an operator would before starting a server; the TOTP secret.
pub fn create_account(data_dir: &Path, target: &Target, person: &str) -> String {
    autolog_test_support::create_user_cli(
        || command(data_dir, target),
        person,
        &autolog_test_support::every_role(),
    )
}

/// Registers the person in an empty ledger with `autolog ingest`, then gives them an
/// account with every role; the TOTP secret.
pub fn register_and_create_account(data_dir: &Path, target: &Target, person: &str) -> String {
    let files = tempfile::tempdir().expect("tempdir");
    let file = files.path().join("personnel.ndjson");
    std::fs::write(
        &file,
        format!("{}\n", autolog_test_support::person_registration(person)),
    )
    .expect("write the personnel file");
    let out = command(data_dir, target)
        .arg("ingest")
        .arg(&file)
        .output()
        .expect("run autolog ingest");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 accepted"),
        "register {person}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    create_account(data_dir, target, person)
}

/// A client signed in as the person (a TOTP code is accepted once: once per database),
/// with a timeout so that no request hangs the test.
pub async fn sign_in(base: &str, person: &str, totp_secret: &str) -> reqwest::Client {
    autolog_test_support::sign_in_http(base, person, totp_secret)
        .await
        .client_builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}
