//! `autolog chains` and `autolog work SITE`: the chain projection from the command line,
//! as `GET /api/v1/chains` and `GET /api/v1/sites/{site_id}/work` answer it (the operator
//! on the data directory sees every chain, as a network-wide grant does).

use std::process::ExitCode;

use autolog_app::{Autolog, ChainFilter, WorkList};
use autolog_domain::access::{Grant, Role, EVERY_SITE};
use autolog_domain::chain::summary::ChainSummary;
use clap::Args;

/// `autolog chains`: filters and page, as the API takes them.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only chains this site takes part in.
    #[arg(long)]
    site_id: Option<String>,
    /// Only chains in this state (enrolled, collected, in_transit, ...).
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    product_code: Option<String>,
    /// Only the chains of this patient (pseudonymous key).
    #[arg(long)]
    patient_key: Option<String>,
    /// Only COIs after this one (the `next_after` of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the answer as JSON (as GET /api/v1/chains).
    #[arg(long)]
    json: bool,
}

/// `autolog work SITE`.
#[derive(Args, Debug)]
pub struct WorkArgs {
    /// The site's canonical id.
    site_id: String,
    /// Chains per list, 1-1000 (default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the answer as JSON (as GET /api/v1/sites/{site_id}/work).
    #[arg(long)]
    json: bool,
}

/// The operator's view: every chain.
fn operator() -> [Grant; 1] {
    [Grant {
        role: Role::Auditor,
        site_id: EVERY_SITE.to_string(),
    }]
}

pub async fn list(app: &Autolog, args: ListArgs) -> anyhow::Result<ExitCode> {
    let filter = ChainFilter {
        site_id: args.site_id,
        state: args.state,
        product_code: args.product_code,
        patient_key: args.patient_key,
        after: args.after,
        limit: args.limit,
    };
    let list = app.chains(&operator(), &filter).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_rows(&list.chains);
    if let Some(next) = &list.next_after {
        println!("more: --after {next}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn work(app: &Autolog, args: WorkArgs) -> anyhow::Result<ExitCode> {
    let work = app
        .site_work(&operator(), &args.site_id, args.limit)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&work)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (title, list) in [
        ("to collect", &work.to_collect),
        ("to receive", &work.to_receive),
        ("in progress here", &work.in_progress),
        ("on hold here", &work.on_hold),
    ] {
        print_list(title, list);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(title: &str, list: &WorkList) {
    let more = if list.more { ", more wait" } else { "" };
    println!("{title}: {}{more}", list.chains.len());
    print_rows(&list.chains);
}

/// One line per chain: COI, state, product, treatment site, where it is, holds.
fn print_rows(chains: &[ChainSummary]) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    for c in chains {
        let handoff = match (&c.open_handoff_id, &c.handoff_to_site_id) {
            (Some(id), Some(to)) => format!("  handoff {id} to {to}"),
            _ => String::new(),
        };
        println!(
            "  {}  {}  product {}  treated at {}  at {}  custodian {}  holds {}{handoff}",
            c.coi,
            c.state.as_str(),
            or_dash(&c.product_code),
            or_dash(&c.treatment_site_id),
            or_dash(&c.location_site_id),
            or_dash(&c.custodian_site_id),
            c.open_holds,
        );
    }
}
