//! `autolog user ...` and `autolog token ...`: administration of console accounts, role
//! grants and source systems' API tokens on the data directory (as the API's /users, /tokens).

use std::process::ExitCode;

use autolog_app::Autolog;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a console account for a registered person. The password (also the
    /// person's e-signature secret) is read from stdin; the TOTP key is printed once.
    Create {
        person_id: String,
        /// Who does it (person/<id>), for the record.
        #[arg(long)]
        actor: String,
    },
    /// Grant a role at a site (`*`: every site).
    Grant {
        person_id: String,
        role: String,
        site_id: String,
        #[arg(long)]
        actor: String,
    },
    /// Revoke a role at a site.
    Revoke {
        person_id: String,
        role: String,
        site_id: String,
        #[arg(long)]
        actor: String,
    },
    /// Unlock an account locked after failed sign-ins.
    Unlock {
        person_id: String,
        #[arg(long)]
        actor: String,
    },
    /// Replace a user's TOTP key (printed once) and end their sessions.
    ResetSecondFactor {
        person_id: String,
        #[arg(long)]
        actor: String,
    },
    /// List accounts with their grants (never secrets).
    List,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue an API token to a source system (printed once; only its hash is kept).
    Issue {
        system_id: String,
        /// The sites it records for (default: the system's owning site); repeatable.
        #[arg(long = "site")]
        sites: Vec<String>,
        /// Days of validity (default 90, at most 366).
        #[arg(long)]
        valid_days: Option<u32>,
        #[arg(long)]
        actor: String,
    },
    /// Revoke a token at once.
    Revoke {
        token_id: String,
        #[arg(long)]
        actor: String,
    },
    /// List tokens (never the secrets).
    List,
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

fn check_actor(actor: &str) -> anyhow::Result<()> {
    autolog_domain::ledger::envelope::check_actor("actor", actor)?;
    Ok(())
}

pub async fn run_user(app: &Autolog, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Create { person_id, actor } => {
            check_actor(&actor)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            print(&app.create_user(&person_id, password, &actor).await?)
        }
        UserCommand::Grant {
            person_id,
            role,
            site_id,
            actor,
        } => {
            check_actor(&actor)?;
            print(&app.grant_role(&person_id, &role, &site_id, &actor).await?)
        }
        UserCommand::Revoke {
            person_id,
            role,
            site_id,
            actor,
        } => {
            check_actor(&actor)?;
            print(&app.revoke_role(&person_id, &role, &site_id, &actor).await?)
        }
        UserCommand::Unlock { person_id, actor } => {
            check_actor(&actor)?;
            print(&app.unlock_user(&person_id, &actor).await?)
        }
        UserCommand::ResetSecondFactor { person_id, actor } => {
            check_actor(&actor)?;
            print(&app.reset_second_factor(&person_id, &actor).await?)
        }
        UserCommand::List => print(&app.users().await?),
    }
}

pub async fn run_token(app: &Autolog, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Issue {
            system_id,
            sites,
            valid_days,
            actor,
        } => {
            check_actor(&actor)?;
            print(
                &app.issue_token(&system_id, &sites, valid_days, &actor)
                    .await?,
            )
        }
        TokenCommand::Revoke { token_id, actor } => {
            check_actor(&actor)?;
            print(&app.revoke_token(&token_id, &actor).await?)
        }
        TokenCommand::List => print(&app.tokens().await?),
    }
}
