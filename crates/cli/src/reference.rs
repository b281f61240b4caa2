//! `autolog reference ...`: bulk import and export of the canonical registries and
//! crosswalks, and the alignment report, over the app layer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use autolog_app::{Autolog, ImportFile, ImportProgress, REGISTRIES};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Subcommand)]
pub enum ReferenceCommand {
    /// Import CSV or JSON files (or every .csv/.json file of a directory, in file-name
    /// order), atomically: if any row is bad, nothing is written and every bad row is listed.
    Import {
        /// Files or directories. A CSV file, or a JSON list, is named after its registry
        /// (`01-sites.csv`, `personnel.json`); a JSON export document holds all registries.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Check every row and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The registry of every file given, whatever its name.
        #[arg(long)]
        registry: Option<String>,
        /// Who is importing (recorded as the events' actor), e.g. person/P-0042.
        #[arg(long, default_value = "system/reference-import")]
        actor: String,
    },
    /// Export every registry and crosswalk: JSON (one document, to standard output or
    /// --out DIR/reference.json) or CSV (one file per registry into --out DIR).
    Export {
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Directory to write into (required for CSV); files are written whole or not at all.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Export the registries as Autolog knew them at this instant (RFC 3339).
        #[arg(long)]
        known_at: Option<String>,
    },
    /// The alignment report: unmapped codes, expiring crosswalks, sites without a valid
    /// zone, lapsed qualifications and calibrations, likely duplicates, zone discrepancies.
    /// Exits 1 when it finds a problem.
    Check {
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        /// A crosswalk ending within this many days is about to expire.
        #[arg(long)]
        horizon_days: Option<u32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

pub async fn run(app: &Autolog, command: ReferenceCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReferenceCommand::Import {
            paths,
            dry_run,
            registry,
            actor,
        } => import(app, &paths, dry_run, registry, &actor).await,
        ReferenceCommand::Export {
            format,
            out,
            known_at,
        } => export(app, format, out.as_deref(), known_at.as_deref()).await,
        ReferenceCommand::Check { json, horizon_days } => check(app, json, horizon_days).await,
    }
}

/// The files to import: each file as given, each directory's .csv/.json files by name.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("csv" | "json"))
                })
                .collect();
            found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            if found.is_empty() {
                bail!("{} holds no .csv or .json file", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

async fn import(
    app: &Autolog,
    paths: &[PathBuf],
    dry_run: bool,
    registry: Option<String>,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let mut inputs = Vec::new();
    for path in collect_files(paths)? {
        let content =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        inputs.push(ImportFile {
            name: path.display().to_string(),
            content,
            registry: registry.clone(),
        });
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("checking");
    let progress = |p: ImportProgress| match p {
        ImportProgress::Checking { done, total } => {
            bar.set_length(total);
            bar.set_position(done);
        }
        ImportProgress::Writing { events } => {
            bar.set_message(format!("writing {events} events in one transaction"));
        }
    };
    let report = app
        .import_reference(&inputs, actor, dry_run, &progress)
        .await?;
    bar.finish_and_clear();
    for bad in &report.bad_rows {
        println!("{bad}");
    }
    let summary = format!(
        "{} rows: {} registered, {} amended, {} mappings, {} unchanged",
        report.rows, report.registered, report.amended, report.mapped, report.unchanged
    );
    if !report.bad_rows.is_empty() {
        println!(
            "import refused: {} bad rows; nothing was written ({} rows read)",
            report.bad_rows.len(),
            report.rows
        );
        return Ok(ExitCode::from(1));
    }
    if dry_run {
        println!("dry run, nothing written: {summary}");
    } else {
        app.checkpoint_if_grown().await?;
        println!(
            "imported {summary}; {} events appended (import {})",
            report.appended_events, report.import_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file whole or not at all: to a temporary name beside it, then renamed.
fn write_atomically(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}

async fn export(
    app: &Autolog,
    format: Format,
    out: Option<&Path>,
    known_at: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match (format, out) {
        (Format::Json, None) => {
            let doc = app.export_reference(known_at).await?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        (Format::Json, Some(dir)) => {
            let doc = app.export_reference(known_at).await?;
            let path = dir.join("reference.json");
            write_atomically(
                &path,
                format!("{}\n", serde_json::to_string_pretty(&doc)?).as_bytes(),
            )?;
            eprintln!("wrote {}", path.display());
        }
        (Format::Csv, None) => bail!("--format csv writes one file per registry: give --out DIR"),
        (Format::Csv, Some(dir)) => {
            // Every registry is read before any file is written.
            let mut files = Vec::new();
            for (i, registry) in REGISTRIES.iter().enumerate() {
                let csv = app.export_reference_csv(registry.name, known_at).await?;
                files.push((dir.join(format!("{:02}-{}.csv", i + 1, registry.name)), csv));
            }
            for (path, csv) in &files {
                write_atomically(path, csv.as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(app: &Autolog, json: bool, horizon_days: Option<u32>) -> anyhow::Result<ExitCode> {
    // The CLI is a JSON edge: the report is printed section by section from its JSON.
    let report = serde_json::to_value(app.alignment_report(horizon_days).await?)?;
    let problems = report["problems"].as_u64().unwrap_or(0);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let sections = [
            ("unmapped_codes", "unmapped codes (system/kind groups)"),
            ("expiring_crosswalks", "crosswalks about to expire"),
            ("sites_without_valid_zone", "sites without a valid zone"),
            (
                "personnel_without_current_qualification",
                "personnel without a current qualification",
            ),
            (
                "personnel_acting_without_qualification",
                "events by personnel without a qualification at the site",
            ),
            ("equipment_past_calibration", "equipment past calibration"),
            ("likely_duplicates", "likely duplicates"),
            ("time_zone_discrepancies", "time-zone discrepancies flagged"),
        ];
        for (key, title) in sections {
            let items = report[key].as_array().map_or(&[][..], Vec::as_slice);
            println!("{title}: {}", items.len());
            for item in items {
                println!("  {item}");
            }
        }
        println!(
            "{problems} problems (as of {})",
            report["generated_at"].as_str().unwrap_or_default()
        );
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
