//! `autolog label`: print a container's label from the ledger (recorded before it is
//! drawn), draw the label in force again, list a chain's labels, verify a label by its
//! scans, void one. The person named with --as acts with the roles their account holds.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autolog_app::labels::{draw, Label, PrintRequest, VerifyRequest};
use autolog_app::Autolog;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum LabelCommand {
    /// Print a container's label (a DIN, a final unit, or an SSCC as (00)...): the print is
    /// recorded, then the label is drawn to --out (or stdout) as --format.
    Print {
        coi: String,
        container: String,
        #[arg(long)]
        site_id: String,
        #[arg(long)]
        printer: String,
        /// The person printing (person id with a role at the site).
        #[arg(long = "as", value_name = "PERSON_ID")]
        person: String,
        /// The label template (default: the product's one active template).
        #[arg(long)]
        template_id: Option<String>,
        /// Why the label is printed again (required for a reprint).
        #[arg(long)]
        reprint_reason: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Draw the label in force on a container again, from its record.
    Show {
        coi: String,
        container: String,
        #[command(flatten)]
        output: Output,
    },
    /// Every label of a chain, as JSON (as GET /api/v1/chains/{coi}/labels).
    List { coi: String },
    /// Compare the scans of an applied label with what was printed; a mismatch holds the
    /// chain and raises an alert. Exits 1 on a mismatch.
    Verify {
        coi: String,
        container: String,
        #[arg(long)]
        site_id: String,
        #[arg(long = "as", value_name = "PERSON_ID")]
        person: String,
        /// Each symbol as the scanner sent it; give --scan once per symbol.
        #[arg(long = "scan", required = true)]
        scans: Vec<String>,
    },
    /// Void the label in force on a container, saying why.
    Void {
        coi: String,
        container: String,
        #[arg(long)]
        site_id: String,
        #[arg(long = "as", value_name = "PERSON_ID")]
        person: String,
        #[arg(long)]
        reason: String,
    },
}

/// Where and how a label is drawn.
#[derive(clap::Args, Debug)]
pub struct Output {
    /// json (the record), pdf, svg or zpl.
    #[arg(long, default_value = "json", value_parser = ["json", "pdf", "svg", "zpl"])]
    format: String,
    /// The file to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn run(app: &Autolog, command: LabelCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabelCommand::Print {
            coi,
            container,
            site_id,
            printer,
            person,
            template_id,
            reprint_reason,
            output,
        } => {
            let principal = app.local_person(&person).await?;
            let request = PrintRequest {
                coi,
                container,
                template_id,
                site_id,
                printer,
                printed_by: None,
                reprint_reason,
            };
            let label = app.print_label(&principal, &request).await?;
            write(&label, &output)
        }
        LabelCommand::Show {
            coi,
            container,
            output,
        } => write(&app.current_label(&coi, &container).await?, &output),
        LabelCommand::List { coi } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&app.labels_of(&coi).await?)?
            );
            Ok(ExitCode::SUCCESS)
        }
        LabelCommand::Verify {
            coi,
            container,
            site_id,
            person,
            scans,
        } => {
            let principal = app.local_person(&person).await?;
            let request = VerifyRequest {
                coi,
                container,
                site_id,
                scans,
                verified_by: None,
            };
            let verification = app.verify_label(&principal, &request).await?;
            println!("{}", serde_json::to_string_pretty(&verification)?);
            Ok(if verification.outcome == "match" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LabelCommand::Void {
            coi,
            container,
            site_id,
            person,
            reason,
        } => {
            let principal = app.local_person(&person).await?;
            let voided = app
                .void_label(&principal, &coi, &container, &site_id, &reason, None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&voided)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write(label: &Label, output: &Output) -> anyhow::Result<ExitCode> {
    let bytes = if output.format == "json" {
        serde_json::to_vec_pretty(label)?
    } else {
        draw(label, &output.format)?.1
    };
    match &output.out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "label {} (copy {}) of {} written to {}",
                label.label_id,
                label.copy,
                label.content.container,
                path.display()
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}
