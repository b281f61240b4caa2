//! The composition root: the one place that chooses a store backend, from the configured
//! URL (none: the embedded SQLite file in the data directory; `postgres://`: PostgreSQL),
//! and builds the app on it. The app itself sees only the `Store` trait.

use std::sync::Arc;

use autolog_app::config::redact_password;
use autolog_app::{AppError, Autolog, Config, SQLITE_FILE};
use autolog_store::Store;
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;

/// Opens the store the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    match &config.database_url {
        None => {
            let path = config.data_dir.join(SQLITE_FILE);
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

/// Opens the instance described by `config`, initialising the data directory (signing
/// key, SQLite file, and the quick start's vault key when no vault key is configured)
/// when it is new.
pub async fn open(config: &Config) -> Result<Autolog, AppError> {
    let keys = config.init_keys()?;
    Ok(Autolog::with_keys(open_store(config).await?, keys))
}

/// Opens an already initialised instance; a missing data directory is an error (checked
/// before the store is opened, so nothing is created).
pub async fn open_existing(config: &Config) -> Result<Autolog, AppError> {
    let keys = config.existing_keys()?;
    Ok(Autolog::with_keys(open_store(config).await?, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        Config {
            data_dir: dir.join("data"),
            database_url: None,
            vault_key_file: None,
            vault_key_hex: None,
        }
    }

    #[tokio::test]
    async fn a_missing_data_directory_is_refused_and_nothing_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path());
        assert!(open_existing(&config).await.is_err());
        assert!(
            !config.data_dir.exists(),
            "open_existing created the data directory"
        );
        open(&config).await.expect("open initialises");
        assert!(config.data_dir.join(SQLITE_FILE).exists());
        open_existing(&config).await.expect("now it exists");
    }

    #[tokio::test]
    async fn an_unsupported_url_is_refused_naming_it_without_its_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            database_url: Some("mysql://app:s3cret@db/x".into()),
            ..config(dir.path())
        };
        let error = open_store(&config).await.err().expect("refused");
        let text = error.to_string();
        assert!(text.contains("mysql://app:***@db/x"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
