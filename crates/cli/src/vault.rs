//! `autolog vault ...`: rotate the personal-data vault's master key, and erase a patient's
//! identifying data (crypto-shredding) once retention allows, over the app layer.

use std::path::PathBuf;
use std::process::ExitCode;

use autolog_app::{read_vault_key_file, Config, DataDir};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Re-wrap every patient's data key under a new master key (one transaction). The
    /// current key is the configured one (--vault-key-file, AUTOLOG_VAULT_KEY or the data
    /// directory's vault.key, which is then replaced by the new key). Restart every server
    /// sharing the database with the new key afterwards.
    Rotate {
        /// The new master key: 32 raw bytes or 64 hex characters, mode 0600.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        /// Who rotates it (recorded as the event's actor), e.g. person/P-0042.
        #[arg(long, default_value = "system/vault-rotation")]
        actor: String,
    },
    /// Erase the identifying data of the patient of a chain (crypto-shredding): refused while
    /// retention keeps the patient's records (the date is given) or a legal hold applies.
    /// The ledger is unchanged and keeps verifying.
    Erase {
        /// The chain's COI (any of its forms).
        coi: String,
        /// Why (recorded in the ledger for good: never a patient identifier).
        #[arg(long)]
        reason: String,
        /// Who erases it, e.g. person/P-0042.
        #[arg(long)]
        actor: String,
    },
}

pub async fn run(config: &Config, command: VaultCommand) -> anyhow::Result<ExitCode> {
    match command {
        VaultCommand::Rotate {
            new_key_file,
            actor,
        } => {
            let new_key = read_vault_key_file(&new_key_file)?;
            let app = crate::store::open_existing(config).await?;
            let report = app.rotate_vault_key(new_key.clone(), &actor).await?;
            println!(
                "rotated the vault master key {} -> {}: {} data keys re-wrapped",
                report.from_key_id, report.to_key_id, report.records
            );
            if config.vault_key_in_data_dir() {
                let data_dir = DataDir::new(&config.data_dir);
                match data_dir.replace_vault_key(&new_key) {
                    Ok(()) => println!(
                        "{} now holds the new key; {} may be deleted",
                        data_dir.vault_key_path().display(),
                        new_key_file.display()
                    ),
                    Err(e) => {
                        eprintln!(
                            "error: the records are wrapped under the new key, but {e}: copy {} \
                             to {} (or give it with --vault-key-file) before starting Autolog",
                            new_key_file.display(),
                            data_dir.vault_key_path().display()
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            } else {
                println!(
                    "give {} (--vault-key-file or AUTOLOG_VAULT_KEY) to every Autolog instance \
                     now, and destroy the old key once no backup needs it",
                    new_key_file.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Erase { coi, reason, actor } => {
            let app = crate::store::open_existing(config).await?;
            let report = app.erase_personal_data(&coi, &actor, &reason).await?;
            println!(
                "erased the personal data of patient {} (chain {}) at {}{}",
                report.patient_key,
                report.coi,
                report.erased_at,
                if report.already_erased {
                    " (already erased; scrub finished)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
