//! Runs every conformance case on both backends: SQLite always, PostgreSQL when
//! AUTOLOG_TEST_POSTGRES_URL is set (skipped with a message otherwise).

use autolog_store_conformance::cases::{self, Burst};
use autolog_store_conformance::harness::{run_on, Backend};
use proptest::prelude::*;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    run_on(Backend::Sqlite, stringify!($case), cases::$case).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    run_on(Backend::Postgres, stringify!($case), cases::$case).await;
                }
            )*
        }
    };
}

on_both_backends!(
    alert_rows_are_replaced_and_queried,
    signal_rows_are_added_and_read_by_range,
    chain_summaries_are_replaced_and_queried,
    signing_secrets_are_set_replaced_and_read,
    the_writer_recovers_once_a_full_disk_has_space,
    secrets_are_replaced_only_where_unchanged,
    append_and_read_back,
    same_source_twice_returns_the_first_event,
    concurrent_appends_to_one_stream_have_no_gaps,
    concurrent_appends_to_many_streams_all_succeed,
    a_refused_batch_writes_nothing,
    corrections_follow_their_rules,
    bitemporal_reads_keep_what_was_known,
    recorded_at_strictly_increases_even_if_the_clock_goes_back,
    merkle_proofs_verify,
    checkpoints_round_trip,
    a_full_batch_appends_in_one_piece,
    stream_rules_are_checked_inside_the_append,
    unmapped_codes_are_counted,
    the_recording_site_round_trips,
    coi_sequences_are_never_given_twice,
    outbox_cursors_start_empty_and_never_move_back,
    webhooks_round_trip,
    a_duplicate_webhook_id_is_refused,
    enqueue_is_idempotent_and_the_cursor_never_moves_back,
    due_deliveries_honour_retry_time_delivery_and_deactivation,
    a_failed_then_successful_attempt_is_logged_twice,
    user_accounts_are_added_once_read_and_listed,
    totp_steps_are_accepted_only_increasing,
    failed_attempts_lock_at_the_threshold_and_unlock_resets,
    role_grants_are_granted_once_revoked_and_listed_in_order,
    api_tokens_round_trip_and_are_revoked_once,
    sessions_are_added_touched_and_ended,
    vault_records_are_put_replaced_and_read,
    vault_keys_are_rewrapped_all_or_nothing,
    an_erased_vault_record_is_empty_and_stays_erased,
    epcis_captures_are_stored_whole_and_queried_back,
    the_same_epcis_document_twice_is_stored_once,
    epcis_captures_are_all_or_nothing_and_serialised,
    concurrent_requests_share_commits_and_stay_whole,
    concurrent_registrations_open_a_stream_once,
    filtered_stream_reads_return_what_the_filter_admits,
    batched_reads_agree_with_single_reads,
    long_crosswalk_and_lot_streams_keep_their_rules,
);

fn batches() -> impl Strategy<Value = Vec<Vec<(u8, u8)>>> {
    prop::collection::vec(prop::collection::vec((0u8..10, 0u8..40), 1..8), 1..8)
}

fn run_property(backend: Backend, batches: Vec<Vec<(u8, u8)>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run_on(backend, "no_event_is_lost_or_reordered", move |t| {
        cases::no_event_is_lost_or_reordered(t, batches)
    }));
}

/// Up to 24 requests in flight together, each of 1-3 events over a few streams and sources
/// (duplicates within and across requests), about one in four refused.
fn bursts() -> impl Strategy<Value = Vec<Burst>> {
    let request = (
        prop::collection::vec((0u8..10, 0u8..30), 1..4),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(pairs, refused)| {
            if refused {
                Burst::Refused(pairs)
            } else {
                Burst::Events(pairs)
            }
        });
    prop::collection::vec(request, 1..24)
}

fn run_burst(backend: Backend, requests: Vec<Burst>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run_on(
        backend,
        "no_request_in_a_burst_is_lost_or_torn",
        move |t| cases::no_request_in_a_burst_is_lost_or_torn(t, requests),
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_no_event_is_lost_or_reordered(batches in batches()) {
        run_property(Backend::Sqlite, batches);
    }

    #[test]
    fn postgres_no_event_is_lost_or_reordered(batches in batches()) {
        run_property(Backend::Postgres, batches);
    }

    #[test]
    fn sqlite_no_request_in_a_burst_is_lost_or_torn(requests in bursts()) {
        run_burst(Backend::Sqlite, requests);
    }

    #[test]
    fn postgres_no_request_in_a_burst_is_lost_or_torn(requests in bursts()) {
        run_burst(Backend::Postgres, requests);
    }
}

/// PostgreSQL: the planner's statistics are refreshed as the ledger grows, also on a
/// server where autovacuum is off, so that reads of many streams at once use the indexes
/// instead of scanning a ledger the planner knows nothing about.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refreshes_planner_statistics_as_the_ledger_grows() {
    run_on(Backend::Postgres, "statistics", |target| async move {
        let url = target.database_url().expect("a PostgreSQL target");
        let store = target.open().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("connect");
        let analyzed = |pool: sqlx::PgPool| async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'",
            )
            .fetch_one(&pool)
            .await
            .expect("pg_stat_user_tables")
        };
        assert!(
            !analyzed(pool.clone()).await,
            "a new ledger has no ANALYZE of its own yet"
        );
        let t0 = 1_772_323_200_000_000i64;
        for batch in 0..11 {
            let drafts: Vec<_> = (0..100)
                .map(|i| {
                    let id = format!("stats-{batch}-{i}");
                    cases::draft(&format!("note/{id}"), "conformance", &id, t0)
                })
                .collect();
            store
                .append(&drafts, &move || cases::at(t0 + 1_000_000))
                .await
                .expect("append");
        }
        assert!(
            analyzed(pool.clone()).await,
            "1,100 rows appended: the store refreshed the planner's statistics"
        );
        pool.close().await;
    })
    .await;
}
