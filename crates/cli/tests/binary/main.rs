//! The CLI's tests, in one binary (one link instead of six): each module runs the real
//! `autolog` binary (`common`) on SQLite and PostgreSQL.

mod common;

mod bench;
mod chains;
mod cli;
mod crash;
mod outbox;
mod simulate;
