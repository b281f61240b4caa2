//! `autolog dossier export` and `autolog dossier verify`: a chain's inspection dossier
//! written from the data directory, and checked with nothing but the file and the public
//! key (no database is opened).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autolog_app::Config;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DossierCommand {
    /// Write the dossier of a chain (its events and those of the records they name, each
    /// with its inclusion proof against one signed checkpoint) to --out.
    Export {
        coi: String,
        #[arg(long)]
        valid_at: Option<String>,
        #[arg(long)]
        known_at: Option<String>,
        /// json, or pdf: the PDF/A-3b report with the JSON embedded.
        #[arg(long, default_value = "json", value_parser = ["json", "pdf"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a dossier: every event hash, each stream's chain, every inclusion proof, the
    /// checkpoint's signature. Exits 0 when it verifies, 1 naming the first thing wrong.
    Verify {
        file: PathBuf,
        /// The public key: 64 hex characters, or the JSON of GET /api/v1/key.
        #[arg(long)]
        key: PathBuf,
    },
}

pub async fn run(config: &Config, command: DossierCommand) -> anyhow::Result<ExitCode> {
    match command {
        DossierCommand::Export {
            coi,
            valid_at,
            known_at,
            format,
            out,
        } => {
            let app = crate::store::open_existing(config).await?;
            if format == "pdf" {
                let pdf = app
                    .dossier_pdf(&coi, valid_at.as_deref(), known_at.as_deref())
                    .await?;
                std::fs::write(&out, pdf).with_context(|| format!("writing {}", out.display()))?;
                println!(
                    "dossier of {coi} written to {} (PDF/A-3b, the JSON embedded as dossier.json)",
                    out.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let dossier = app
                .dossier(&coi, valid_at.as_deref(), known_at.as_deref())
                .await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&dossier)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let events = dossier["events"].as_array().map_or(0, Vec::len);
            println!(
                "dossier of {} as known at {}: {events} events, proven against checkpoint {} (tree size {}), written to {}",
                dossier["coi"].as_str().unwrap_or_default(),
                dossier["known_at"].as_str().unwrap_or_default(),
                dossier["checkpoint"]["sequence"],
                dossier["checkpoint"]["tree_size"],
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DossierCommand::Verify { file, key } => {
            let key = crate::read_public_key(&key)?;
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let dossier: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            match autolog_domain::ledger::dossier::verify(&dossier, &key) {
                Ok(v) => {
                    println!(
                        "verified: {} events in {} streams, each in the tree of {} events signed by key {}",
                        v.events, v.streams, v.tree_size, v.key_id
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("NOT verified: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
