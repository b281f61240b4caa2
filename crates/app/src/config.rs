//! Where an instance keeps its data: the data directory (signing key, vault key, SQLite
//! file) and, optionally, a PostgreSQL URL. The binary opens the store the URL names; the
//! app sees only the `Store` trait.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use autolog_domain::SigningKey;

use crate::access::vault::VaultKey;
use crate::AppError;

/// The file in the data directory that holds the Ed25519 signing key (hex seed).
pub const KEY_FILE: &str = "checkpoint-signing-key.ed25519";
/// The SQLite database file in the data directory.
pub const SQLITE_FILE: &str = "autolog.db";
/// The vault master key generated in the data directory for the zero-set-up quick start
/// (64 hex characters). Production keeps the master key elsewhere (`vault_key_file`).
pub const VAULT_KEY_FILE: &str = "vault.key";

#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `postgres://...`; `None` means the embedded SQLite file in the data directory.
    pub database_url: Option<String>,
    /// The vault master key file (`--vault-key-file`, env `AUTOLOG_VAULT_KEY_FILE`): 32 raw
    /// bytes or 64 hex characters, owner-only. Keep it off the database's host and backups.
    pub vault_key_file: Option<PathBuf>,
    /// The vault master key itself as 64 hex characters (env `AUTOLOG_VAULT_KEY`), when no
    /// file is given. Never printed.
    pub vault_key_hex: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_password),
            )
            .field("vault_key_file", &self.vault_key_file)
            .field("vault_key_hex", &self.vault_key_hex.as_ref().map(|_| "***"))
            .finish()
    }
}

/// An instance's keys, read (or created) from its configuration before its store is opened.
pub struct Keys {
    /// The checkpoint signing key.
    pub signing: SigningKey,
    /// The personal-data vault's master key, if one is configured or in the data directory.
    pub vault: Option<VaultKey>,
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

    /// The vault master key, from the first place that gives one: `vault_key_file`,
    /// `vault_key_hex` (not both), or `vault.key` in the data directory. With none of them,
    /// `create` generates `vault.key` (mode 0600) for the quick start; otherwise `None`.
    pub fn load_vault_key(&self, create: bool) -> Result<Option<VaultKey>, AppError> {
        match (&self.vault_key_file, &self.vault_key_hex) {
            (Some(_), Some(_)) => Err(AppError::Config(
                "the vault master key is given twice (--vault-key-file and AUTOLOG_VAULT_KEY): give one"
                    .into(),
            )),
            (Some(path), None) => read_vault_key_file(path).map(Some),
            (None, Some(hex)) => VaultKey::from_hex(hex)
                .map(Some)
                .map_err(|rule| AppError::Config(format!("AUTOLOG_VAULT_KEY {rule}"))),
            (None, None) => {
                let data_dir = DataDir::new(&self.data_dir);
                if data_dir.vault_key_path().exists() {
                    read_vault_key_file(&data_dir.vault_key_path()).map(Some)
                } else if create {
                    data_dir.init_vault_key().map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The keys of a new or existing instance: the signing key is created with the data
    /// directory when it is new, and so is the quick start's vault key when no vault key is
    /// configured.
    pub fn init_keys(&self) -> Result<Keys, AppError> {
        let signing = DataDir::new(&self.data_dir).init_or_load_key()?;
        let vault = self.load_vault_key(true)?;
        Ok(Keys { signing, vault })
    }

    /// The keys of an already initialised instance; a missing data directory is an error.
    /// The vault key is loaded when one is configured or in the data directory, never created.
    pub fn existing_keys(&self) -> Result<Keys, AppError> {
        let signing = DataDir::new(&self.data_dir).load_key()?;
        let vault = self.load_vault_key(false)?;
        Ok(Keys { signing, vault })
    }

    /// Whether the vault master key comes from the data directory's `vault.key` (no key
    /// file or key given elsewhere).
    pub fn vault_key_in_data_dir(&self) -> bool {
        self.vault_key_file.is_none() && self.vault_key_hex.is_none()
    }
}

/// Reads a vault master key file: owner-only, 32 raw bytes or 64 hex characters.
pub fn read_vault_key_file(path: &Path) -> Result<VaultKey, AppError> {
    if !path.exists() {
        return Err(AppError::Config(format!(
            "vault master key file {} does not exist",
            path.display()
        )));
    }
    check_owner_only(path)?;
    let contents = zeroize::Zeroizing::new(
        fs::read(path)
            .map_err(|e| AppError::Config(format!("cannot read {}: {e}", path.display())))?,
    );
    VaultKey::from_file_contents(&contents).map_err(|rule| {
        AppError::Config(format!("vault master key file {} {rule}", path.display()))
    })
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

    /// Where the quick start's vault master key lives (see [`VAULT_KEY_FILE`]).
    pub fn vault_key_path(&self) -> PathBuf {
        self.path.join(VAULT_KEY_FILE)
    }

    /// Generates the quick start's vault master key (mode 0600); refuses to replace one.
    pub fn init_vault_key(&self) -> Result<VaultKey, AppError> {
        create_private_dir(&self.path)?;
        let key = VaultKey::generate()?;
        let text = zeroize::Zeroizing::new(format!("{}\n", key.to_hex().as_str()));
        write_private_file(&self.vault_key_path(), text.as_bytes())?;
        tracing::warn!(
            path = %self.vault_key_path().display(),
            key_id = %key.id(),
            "generated a vault master key in the data directory (quick start); production keeps \
             it elsewhere: --vault-key-file or AUTOLOG_VAULT_KEY"
        );
        Ok(key)
    }

    /// Replaces the data directory's `vault.key` with `key` (after a rotation): written
    /// beside it (mode 0600), then renamed over it.
    pub fn replace_vault_key(&self, key: &VaultKey) -> Result<(), AppError> {
        let path = self.vault_key_path();
        let next = self.path.join(format!("{VAULT_KEY_FILE}.new"));
        if next.exists() {
            fs::remove_file(&next)
                .map_err(|e| AppError::Config(format!("cannot remove {}: {e}", next.display())))?;
        }
        let text = zeroize::Zeroizing::new(format!("{}\n", key.to_hex().as_str()));
        write_private_file(&next, text.as_bytes())?;
        fs::rename(&next, &path).map_err(|e| {
            AppError::Config(format!(
                "cannot move {} to {}: {e}",
                next.display(),
                path.display()
            ))
        })
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
            vault_key_file: None,
            vault_key_hex: Some("00".repeat(32)),
        };
        assert!(!format!("{c:?}").contains(":b@"));
        assert!(!format!("{c:?}").contains(&"00".repeat(32)));
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

    #[cfg(unix)]
    #[test]
    fn the_quick_start_vault_key_is_generated_once_owner_only_and_a_given_key_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            database_url: None,
            vault_key_file: None,
            vault_key_hex: None,
        };
        assert!(config.load_vault_key(false).expect("none").is_none());
        let key = config.load_vault_key(true).expect("generate").expect("key");
        let path = DataDir::new(&config.data_dir).vault_key_path();
        let mode = fs::metadata(&path).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = config.load_vault_key(true).expect("load").expect("key");
        assert_eq!(again.id(), key.id());
        // A key file elsewhere (raw bytes) or a hex key takes precedence; not both.
        let file = dir.path().join("master.key");
        write_private_file(&file, &[5u8; 32]).expect("write");
        config.vault_key_file = Some(file.clone());
        let given = config.load_vault_key(true).expect("file").expect("key");
        assert_eq!(given.id(), VaultKey::from_bytes([5u8; 32]).id());
        config.vault_key_hex = Some("05".repeat(32));
        assert!(config.load_vault_key(true).is_err(), "given twice");
        config.vault_key_file = None;
        assert_eq!(
            config.load_vault_key(true).expect("hex").expect("key").id(),
            given.id()
        );
        config.vault_key_hex = Some("not hex".into());
        let e = config
            .load_vault_key(true)
            .expect_err("bad hex")
            .to_string();
        assert!(!e.contains("not hex"), "{e}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            read_vault_key_file(&file).is_err(),
            "a world-readable key is refused"
        );
        // Replaced after a rotation.
        let next = VaultKey::from_bytes([6u8; 32]);
        DataDir::new(&config.data_dir)
            .replace_vault_key(&next)
            .expect("replace");
        assert_eq!(read_vault_key_file(&path).expect("read").id(), next.id());
    }
}
