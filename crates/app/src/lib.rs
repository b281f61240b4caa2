//! Autolog's use cases: one function per thing a user or a source system does with the
//! ledger. Loads from the store, runs domain rules, appends. Knows nothing of HTTP.

mod access;
mod append;
pub mod audit_trail;
mod batch;
mod chain;
pub mod config;
mod dossier;
mod error;
mod feeds;
mod ingest;
pub mod interop;
pub mod labels;
mod ledger;
mod projections;
mod reference;

use std::sync::Arc;

use autolog_domain::SigningKey;
use autolog_store::Store;

pub use access::accounts::{
    attribute, attribute_person, authorize_drafts, totp_code, totp_key, totp_step, AccessSettings,
    GrantInfo, Principal, PrincipalKind, RoleChange, SecondFactorReset, SignedIn, TokenInfo,
    TokenIssued, TokenList, TokenRevoked, UserCreated, UserInfo, UserList, UserUnlocked,
    CONSOLE_SOURCE, MAX_TOKEN_DAYS,
};
pub use access::refusals::{
    tracking_refusals, RECORDED_PER_MINUTE as ACCESS_REFUSALS_RECORDED_PER_MINUTE,
};
pub use access::vault::{
    check_personal_data_fields, PersonalData, PersonalDataErased, PersonalDataRecorded, VaultKey,
    VaultKeyRotated, BEDSIDE_PURPOSE, PERSONAL_DATA_FIELDS,
};
pub use access::verifications::VerificationNeeded;
pub use append::AppendResult;
pub use autolog_store::{Buckets, CommitStats, WriterHealth};
pub use batch::release::ReleaseDraft;
pub use batch::signatures::{PasswordWork, MIN_SECRET_CHARS};
pub use chain::enrol::{
    parse_enrolment, ChainAnswer, CollectedUnit, DisputedCustodyShown, EnrolmentRequest, FinalUnit,
    ShipperShown,
};
pub use config::{read_vault_key_file, Config, DataDir, Keys, SQLITE_FILE, VAULT_KEY_FILE};
pub use error::AppError;
pub use feeds::alerts::{
    Alert, AlertHandling, AlertList, AlertQuery, AlertStatus, ALERT_CHANNEL_CAPACITY,
    ALERT_STATUSES,
};
pub use feeds::backlog::Backlog;
pub use feeds::outbox::{
    NatsOptions, DEFAULT_STREAM_NAME, DEFAULT_SUBJECT_PREFIX, EVENT_TYPE_HEADER, MSG_ID_HEADER,
    NATS_POLL_INTERVAL, POSITION_HEADER, STREAM_HEADER,
};
pub use feeds::webhooks::{
    backoff_seconds, signature, AttemptInfo, DeliveryInfo, WebhookDetail, WebhookInfo, WebhookList,
    WebhookRegistered, DELIVERY_ID_HEADER, SIGNATURE_HEADER,
};
pub use feeds::witness::{WitnessSettings, Witnessed, WITNESS_FILE};
pub use ingest::{
    IngestLine, IngestReport, CHAINS_ENDPOINT, DEFAULT_INGEST_LANES, EVENTS_ENDPOINT,
    SIGNING_SECRET_ENDPOINT,
};
pub use interop::epcis::{
    check_epcis_query, epcis_too_large, parse_capture, EpcisCaptured, EpcisQueryPage,
    ParsedCapture, EPCIS_CONTEXT, EPCIS_DEFAULT_PER_PAGE, EPCIS_EVENT_TYPES, EPCIS_MAX_PER_PAGE,
    EPCIS_QUERY_PARAMETERS, MAX_EPCIS_BYTES, MAX_EPCIS_EVENTS,
};
pub use interop::epcis_export::{
    isbt128_uri, sgln_uri, unit_uri, AUTOLOG_EPCIS_NS, EXPORTED_EVENT_TYPES,
};
pub use ledger::clock::{Clock, ManualClock, ShiftedClock, SystemClock};
pub use ledger::proofs::{ConsistencyProof, InclusionProof};
pub use ledger::read::{sha256_hex, EventPage, ListQuery, PresentedEvent, TimeDisplay};
pub use ledger::request::{
    parse_request, too_large, MAX_BATCH_EVENTS, MAX_CONFIGURABLE_SKEW_SECONDS,
    MAX_FUTURE_SKEW_SECONDS, MAX_REQUEST_BYTES,
};
pub use ledger::verify::{VerifyFailure, VerifyReport};
pub use projections::chains::{ChainFilter, ChainList, ProjectionCheck, SiteWork, WorkList};
pub use projections::genealogy::{
    Administered, BackwardGenealogy, BatchMadeWith, ForwardGenealogy, PatientReceived,
};
pub use projections::reconciliation::{
    CodeUnmapped, HandoffUnanswered, HoldOpen, Reconciliation, StepOutOfOrder, UnitOnSeveralChains,
    UnresolvedReference,
};
pub use projections::retention::{ChainRetention, PolicyApplied, Retention, RetentionStatus};
pub use projections::signals::{SignalCount, SignalReport, SignalTally, SignalTotal};
pub use projections::turnaround::{
    ChainTurnaround, ProductTurnaround, SiteTurnaround, StepTaken, StepTurnaround, Summary,
    Turnaround,
};
pub use reference::alignment::DEFAULT_EXPIRY_HORIZON_DAYS;
pub use reference::alignment::{
    AlignmentReport, EquipmentProblem, PersonProblem, SiteZoneProblem, UnmappedCodeSeen,
    UnmappedGroup,
};
pub use reference::bulk::{
    check_import_files, BadRow, ImportFile, ImportProgress, ImportReport, ReferenceExport,
    EXPORT_FORMAT, IMPORT_SOURCE_SYSTEM, LIST_SEPARATOR, MAX_IMPORT_BYTES,
};
pub use reference::registry::{registry, Cell, Column, Registry, REGISTRIES};
pub use reference::resolve::{RegistryPage, RegistryQuery};
pub use reference::time_discipline::{AUTOLOG_ACTOR, ZONE_DISCREPANCY_PREFIX};

/// One running Autolog instance: its store, its checkpoint signing key, and caches of
/// projections that are checked against the ledger before each use.
pub struct Autolog {
    store: Arc<dyn Store>,
    key: SigningKey,
    crosswalks: reference::resolve::CrosswalkCache,
    /// Reference records' current states, kept while their stream's head is unchanged.
    states: ledger::state_cache::StateCache,
    clock_skew_tolerance_seconds: i64,
    /// The ISBT 128 FIN under which this instance issues COIs, if it issues any.
    coi_issuer: Option<autolog_domain::identifiers::Fin>,
    /// Alerts recorded by this process, pushed to subscribers (server-sent events).
    alerts: tokio::sync::broadcast::Sender<Alert>,
    /// Session, lockout and token settings.
    access: AccessSettings,
    /// The personal-data vault's master key (none until configured) and write lock.
    vault: access::vault::Vault,
    /// Signalled after each append by this process: wakes the outbound feed publisher.
    appended: Arc<tokio::sync::Notify>,
    /// Argon2id checks (sign-in, e-signatures) running at once: at most one per core, so
    /// that a burst of them from many addresses cannot take a thread and 19 MiB each.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// How many Argon2id computations ran, and for how long.
    password_work: Arc<batch::signatures::PasswordWorkDone>,
    /// What time it is and the next event id (the system clock unless one is given).
    clock: Arc<dyn Clock>,
    /// Whether webhook receivers may be on loopback or private addresses (on-premises).
    private_webhook_receivers: bool,
    /// Failed sign-ins per account and client address, and the waits they earned.
    sign_in_throttle: access::throttle::SignInThrottle,
    /// Refused attempts per sender this minute (recorded one by one, then counted).
    access_refusals: access::refusals::RefusalWindows,
    /// Held while this process folds the ledger into its projections (one projector).
    projector: Arc<tokio::sync::Mutex<()>>,
    /// Signalled after each append by this process: wakes the background projector.
    to_project: Arc<tokio::sync::Notify>,
    /// Where checkpoints are witnessed, and whose this instance witnesses.
    witnessing: std::sync::RwLock<feeds::witness::WitnessSettings>,
}

impl Autolog {
    /// Builds an instance on an opened store with the keys its configuration gave
    /// ([`Config::init_keys`] or [`Config::existing_keys`]).
    pub fn with_keys(store: Arc<dyn Store>, keys: Keys) -> Self {
        let app = Autolog::from_parts(store, keys.signing);
        match keys.vault {
            Some(k) => app.with_vault_key(k),
            None => app,
        }
    }

    /// Builds an instance from parts (tests, benchmarks).
    pub fn from_parts(store: Arc<dyn Store>, key: SigningKey) -> Self {
        Autolog {
            store,
            key,
            crosswalks: reference::resolve::CrosswalkCache::default(),
            states: ledger::state_cache::StateCache::default(),
            clock_skew_tolerance_seconds: MAX_FUTURE_SKEW_SECONDS,
            coi_issuer: None,
            alerts: tokio::sync::broadcast::channel(ALERT_CHANNEL_CAPACITY).0,
            access: AccessSettings::default(),
            vault: access::vault::Vault::default(),
            appended: Arc::new(tokio::sync::Notify::new()),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, usize::from),
            )),
            password_work: Arc::default(),
            clock: Arc::new(SystemClock),
            private_webhook_receivers: false,
            sign_in_throttle: access::throttle::SignInThrottle::default(),
            access_refusals: access::refusals::RefusalWindows::default(),
            projector: Arc::new(tokio::sync::Mutex::new(())),
            to_project: Arc::new(tokio::sync::Notify::new()),
            witnessing: std::sync::RwLock::new(feeds::witness::WitnessSettings::default()),
        }
    }

    /// Gives the instance another clock (tests that move time, repeatable ingests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The instance's current time.
    pub fn now(&self) -> autolog_domain::Instant {
        self.clock.now()
    }

    /// The instance's clock as the store reads it when it stamps `recorded_at`.
    pub(crate) fn store_clock(
        &self,
    ) -> impl Fn() -> autolog_domain::Instant + Send + Sync + 'static {
        let clock = Arc::clone(&self.clock);
        move || clock.now()
    }

    /// The id of the next event this instance creates.
    pub(crate) fn new_event_id(&self) -> autolog_domain::Uuid {
        self.clock.event_id()
    }

    /// Wakes whoever waits for appends (the outbound feed publisher, the background
    /// projector): a wake-up given while no one waits is kept for the next wait, so none is
    /// lost.
    pub(crate) fn note_appended(&self) {
        self.appended.notify_one();
        self.to_project.notify_one();
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The public half of the checkpoint signing key, in hex, and its key id.
    pub fn public_key(&self) -> (String, String) {
        let public = self.key.verifying_key();
        (
            hex::encode(public.as_bytes()),
            autolog_domain::ledger::checkpoint::key_id(&public),
        )
    }
}
