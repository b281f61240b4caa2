//! `autolog signals`: the weekly counts of signals of master data failing, as
//! `GET /api/v1/signals` answers them.

use std::process::ExitCode;

use autolog_app::{Autolog, SignalReport};
use clap::Args;

/// `autolog signals`: the range and site, as the API takes them.
#[derive(Args, Debug)]
pub struct SignalArgs {
    /// The first week: a date (2026-11-30) or an RFC 3339 instant, back to its Monday
    /// (default: 12 weeks before `--to`).
    #[arg(long)]
    from: Option<String>,
    /// The end of the range, on to the next Monday (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Only this site's signals (unmapped codes, which belong to no site, left out).
    #[arg(long)]
    site_id: Option<String>,
    /// Print the answer as JSON (as GET /api/v1/signals).
    #[arg(long)]
    json: bool,
}

pub async fn run(app: &Autolog, args: SignalArgs) -> anyhow::Result<ExitCode> {
    let report = app
        .signals(
            args.from.as_deref(),
            args.to.as_deref(),
            args.site_id.as_deref(),
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The report for people: the totals, then one line per week and count.
fn print(report: &SignalReport) {
    let site = report.site_id.as_deref().unwrap_or("every site");
    println!(
        "signals from {} to {} (weeks from Monday, UTC), {site}",
        report.from, report.to
    );
    for total in &report.totals {
        println!("  {:<26} {:>6}", total.signal.as_str(), total.count);
    }
    for c in &report.counts {
        println!(
            "{}  {:<26} {:>6}  site {}  source {}  product {}",
            c.week_start,
            c.signal.as_str(),
            c.count,
            c.site_id.as_deref().unwrap_or("-"),
            c.source_system.as_deref().unwrap_or("-"),
            c.product_code.as_deref().unwrap_or("-"),
        );
    }
}
