//! Where an instance keeps its data: the data directory (signing key, SQLite file) and,
//! optionally, a PostgreSQL URL. The backend is chosen once, here, from the URL.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autolog_domain::SigningKey;
use autolog_store::Store;
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;

use crate::AppError;

/// The file in the data directory that holds the Ed25519 signing key (hex seed).
pub const KEY_FILE: &str = "checkpoint-signing-key.ed25519";
/// The SQLite database file in the data directory.
pub const SQLITE_FILE: &str = "autolog.db";

#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `postgres://...`; `None` means the embedded SQLite file in the data directory.
    pub database_url: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_password),
            )
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

impl Config {
    /// A description of the store for logs and summaries, password redacted.
    pub fn store_description(&self) -> String {
        match &self.database_url {
            Some(url) => format!("postgres {}", redact_password(url)),
            None => format!("sqlite {}", self.data_dir.join(SQLITE_FILE).display()),
        }
    }

    pub async fn open_store(&self) -> Result<Arc<dyn Store>, AppError> {
        match &self.database_url {
            None => {
                let path = self.data_dir.join(SQLITE_FILE);
                Ok(Arc::new(SqliteStore::open(&path).await?))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Arc::new(PostgresStore::connect(url).await?))
            }
            Some(url) => Err(AppError::Config(format!(
                "--database-url {} is not supported: use postgres://... or leave it out for the embedded SQLite store",
                redact_password(url)
            ))),
        }
    }
}

/// The instance's data directory: owner-only, holding the signing key (and the SQLite file).
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    pub fn new(path: &Path) -> Self {
        DataDir {
            path: path.to_path_buf(),
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.path.join(KEY_FILE)
    }

    pub fn is_initialised(&self) -> bool {
        self.key_path().exists()
    }

    /// Creates the directory (mode 0700) and a new signing key (mode 0600).
    /// Refuses to overwrite an existing key.
    pub fn init(&self) -> Result<SigningKey, AppError> {
        if self.is_initialised() {
            return Err(AppError::Config(format!(
                "{} is already initialised (key {} exists); refusing to replace the signing key",
                self.path.display(),
                self.key_path().display()
            )));
        }
        create_private_dir(&self.path)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| AppError::Config(format!("no randomness for a new key: {e}")))?;
        write_private_file(
            &self.key_path(),
            format!("{}\n", hex::encode(seed)).as_bytes(),
        )?;
        Ok(SigningKey::from_bytes(&seed))
    }

    pub fn load_key(&self) -> Result<SigningKey, AppError> {
        let path = self.key_path();
        if !path.exists() {
            return Err(AppError::Config(format!(
                "{} is not an initialised Autolog data directory (no {KEY_FILE}); run `autolog init` first",
                self.path.display()
            )));
        }
        check_owner_only(&path)?;
        let text = fs::read_to_string(&path)
            .map_err(|e| AppError::Config(format!("cannot read {}: {e}", path.display())))?;
        let bytes = hex::decode(text.trim())
            .map_err(|e| AppError::Config(format!("{} is not a hex key: {e}", path.display())))?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            AppError::Config(format!(
                "{} holds {} bytes; an Ed25519 seed has 32",
                path.display(),
                bytes.len()
            ))
        })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    pub fn init_or_load_key(&self) -> Result<SigningKey, AppError> {
        if self.is_initialised() {
            self.load_key()
        } else {
            tracing::info!(data_dir = %self.path.display(), "initialising a new data directory");
            self.init()
        }
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| AppError::Config(format!("cannot create {}: {e}", path.display())))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| AppError::Config(format!("cannot restrict {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> Result<(), AppError> {
    fs::create_dir_all(path)
        .map_err(|e| AppError::Config(format!("cannot create {}: {e}", path.display())))
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AppError::Config(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(|e| AppError::Config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), AppError> {
    fs::write(path, contents)
        .map_err(|e| AppError::Config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| AppError::Config(format!("cannot read {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(AppError::Config(format!(
            "{} is readable by others (mode {:o}); restrict it with chmod 600",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path) -> Result<(), AppError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/autolog"),
            "postgres://app:***@db:5432/autolog"
        );
        assert_eq!(
            redact_password("postgres://app@db/x"),
            "postgres://app@db/x"
        );
        let c = Config {
            data_dir: "d".into(),
            database_url: Some("postgres://a:b@h/x".into()),
        };
        assert!(!format!("{c:?}").contains(":b@"));
    }

    #[cfg(unix)]
    #[test]
    fn init_creates_an_owner_only_key_and_refuses_to_replace_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::new(&dir.path().join("data"));
        let key = data.init().expect("init");
        let mode = fs::metadata(data.key_path())
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("data"))
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(data.load_key().expect("load").to_bytes(), key.to_bytes());
        assert!(data.init().is_err());
        fs::set_permissions(data.key_path(), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(data.load_key().is_err(), "a world-readable key is refused");
    }
}
