//! `autolog simulate`: a deterministic generator of a realistic cell therapy network, as
//! newline-delimited JSON requests that `autolog ingest` (and `Autolog::ingest_lines`)
//! loads through the same code path as the HTTP API.
//!
//! Pure: no I/O, no clock. The same options give byte-identical lines. The random stream is
//! ChaCha8 (`rand_chacha`), whose output for a seed is fixed across platforms and releases.
//!
//! Line formats (see `docs/simulation.md`):
//! - `{"endpoint": "POST /api/v1/events", "body": <append request>}`
//! - `{"endpoint": "POST /api/v1/chains", "body": <enrolment>}`
//! - `{"endpoint": "signing-secret", "person_id": "...", "secret": "...", "set_by": "person/..."}`:
//!   ingest-only set-up (the operator's `autolog signer set-secret`), kept beside the ledger
//!   as an Argon2id hash, never in it.
//! - any other line: an append request body, as before.

use autolog_domain::identifiers::{mod37_2_check, Coi, Din, Fin, UnitId};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use autolog_app::{CHAINS_ENDPOINT, EVENTS_ENDPOINT, SIGNING_SECRET_ENDPOINT};

/// Why a simulation could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("simulated time out of range: {0}")]
    TimeOutOfRange(String),
    #[error("zone {zone}: {reason}")]
    Zone { zone: String, reason: String },
    /// The options asked for something the simulator cannot do.
    #[error("{0}")]
    Options(String),
    /// An identifier the simulator built broke its rule (a bug in the simulator).
    #[error("simulated identifier: {0}")]
    Identifier(#[from] autolog_domain::FieldError),
    /// A line the simulator wrote did not read back as JSON (a bug in the simulator).
    #[error("simulated line: {0}")]
    Line(#[from] serde_json::Error),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub patients: usize,
    pub seed: u64,
    /// The share of journeys (0..=1) that carry one injected fault.
    pub fault_rate: f64,
    /// When reference data takes effect (30 days before) and the first enrolment.
    pub start: Timestamp,
    /// Enrolments are spread over this many days after `start`.
    pub enrolment_days: u32,
    /// Requests whose facts happen after this instant are left out: journeys stop where
    /// they stand then (`serve --demo`: now).
    pub until: Option<Timestamp>,
    /// The first two patients' bags are swapped on their way to manufacturing.
    pub bag_swap: bool,
}

impl SimulateOptions {
    /// `patients` patients from 2026-02-01 over 200 days: every journey (about 60 days)
    /// is over before 2026-11, and the period spans the DST changes of every site.
    pub fn new(patients: usize, seed: u64, fault_rate: f64) -> Self {
        SimulateOptions {
            patients,
            seed,
            fault_rate,
            start: Timestamp::from_second(1_769_904_000).unwrap_or(Timestamp::UNIX_EPOCH),
            enrolment_days: 200,
            until: None,
            bag_swap: false,
        }
    }
}

/// One injected fault: its kind, the chains it affects and the (1-based) line that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: String,
    pub cois: Vec<String>,
    pub line: usize,
    pub detail: String,
}

impl Fault {
    pub fn to_json(&self) -> Value {
        json!({"kind": self.kind, "cois": self.cois, "line": self.line, "detail": self.detail})
    }
}

/// Where a journey should stand once every line is ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChain {
    pub coi: String,
    pub state: String,
}

/// The generated requests, the faults injected and the state each chain should reach.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    pub lines: Vec<String>,
    pub faults: Vec<Fault>,
    pub chains: Vec<ExpectedChain>,
}

impl Simulation {
    /// The faults as NDJSON (`<out>.faults.ndjson`).
    pub fn faults_ndjson(&self) -> String {
        let mut out = String::new();
        for f in &self.faults {
            out.push_str(&f.to_json().to_string());
            out.push('\n');
        }
        out
    }
}

/// The kinds of fault the simulator injects, and where each is caught.
pub const FAULT_KINDS: &[&str] = &[
    // Another patient's bag in this shipment: both chains held, critical alerts.
    "swapped_bag",
    // A seal number that is not the manifest's: hold, critical alert.
    "wrong_seal",
    // A DIN scanned with a wrong check character: the receipt is refused (then rescanned).
    "misread_check_character",
    // A MES step naming its own site code, not the canonical one: refused (then resent).
    "unmapped_code",
    // A step sent with the UTC offset of the wrong zone: flagged, minor alert.
    "wrong_utc_offset",
    // The courier arrives after the promised time: hold, alert.
    "late_arrival",
    // The administration sent before the bedside check: refused (then resent in order).
    "out_of_order",
    // A request resent by a flaky source system: a duplicate, nothing written.
    "duplicate",
    // Two patients' bags in one shipper with their labels swapped, both receipts sent as
    // one batch request: both recorded, both chains held, alerts.
    "consolidated_swap",
    // A result the release relied on, corrected after the release: hold, critical alert.
    "amended_result",
    // A consumption entered after its lot's recall, dated before it: recorded, alert.
    "late_entry",
    // The external laboratory scans one sample short: refused (then rescanned).
    "external_lab",
    // One of two bags shipped, the batch names both: refused (then resent).
    "partial_shipment",
    // Starting material out of range on arrival: hold and alert; it is sent back, and
    // the patient collected again under a linked chain that runs clean.
    "returned_shipment",
    // A final unit shipped after its expiry: a hard stop with a critical alert.
    "expired_unit",
];

struct SiteDef {
    id: &'static str,
    name: &'static str,
    types: &'static [&'static str],
    zone: &'static str,
    city: &'static str,
    postal: &'static str,
    country: &'static str,
    gln: &'static str,
    fin: Option<&'static str>,
    local: &'static str,
}

const SITES: &[SiteDef] = &[
    SiteDef {
        id: "S-LAX-01",
        name: "Los Angeles cancer center",
        types: &["apheresis_center", "treatment_center"],
        zone: "America/Los_Angeles",
        city: "Los Angeles",
        postal: "90017",
        country: "US",
        gln: "0614141000029",
        fin: Some("A9990"),
        local: "LAX-ONC",
    },
    SiteDef {
        id: "S-PAR-01",
        name: "Paris haematology and apheresis unit",
        types: &["apheresis_center", "treatment_center"],
        zone: "Europe/Paris",
        city: "Paris",
        postal: "75012",
        country: "FR",
        gln: "3760000000017",
        fin: Some("A9991"),
        local: "PAR-HOSP",
    },
    SiteDef {
        id: "S-SYD-01",
        name: "Sydney cellular therapy centre",
        types: &["apheresis_center", "treatment_center"],
        zone: "Australia/Sydney",
        city: "Sydney",
        postal: "2050",
        country: "AU",
        gln: "9300000000040",
        fin: Some("A9992"),
        local: "SYD-CTC",
    },
    SiteDef {
        id: "S-BOS-01",
        name: "Boston cell therapy manufacturing",
        types: &["manufacturing_site"],
        zone: "America/New_York",
        city: "Boston",
        postal: "02210",
        country: "US",
        gln: "0614141000012",
        fin: Some("A9993"),
        local: "BOS1",
    },
    SiteDef {
        id: "S-FRA-01",
        name: "Frankfurt QC laboratory",
        types: &["laboratory"],
        zone: "Europe/Berlin",
        city: "Frankfurt am Main",
        postal: "65926",
        country: "DE",
        gln: "4000000000020",
        fin: None,
        local: "FRA-QC",
    },
    SiteDef {
        id: "S-BOM-01",
        name: "Mumbai cryogenic logistics depot",
        types: &["logistics_depot"],
        zone: "Asia/Kolkata",
        city: "Mumbai",
        postal: "400099",
        country: "IN",
        gln: "8900000000036",
        fin: None,
        local: "BOM-HUB",
    },
];

/// Treatment (and apheresis) centers: indexes into `SITES`.
const CENTERS: [usize; 3] = [0, 1, 2];
const BOS: usize = 3;
const FRA: usize = 4;

/// A person: id, printed name, qualifications (site, role).
type PersonDef = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PEOPLE: &[PersonDef] = &[
    ("P-0001", "Claire Martin", &[("S-BOS-01", "qa_releaser")]),
    (
        "P-0002",
        "Daniel Okafor",
        &[("S-BOS-01", "manufacturing_operator")],
    ),
    ("P-0003", "Anja Weber", &[("S-FRA-01", "qc_analyst")]),
    ("P-0004", "Ravi Iyer", &[("S-BOM-01", "courier")]),
    (
        "P-0005",
        "Maria Lopez",
        &[
            ("S-LAX-01", "treatment_center_nurse"),
            ("S-LAX-01", "apheresis_operator"),
        ],
    ),
    (
        "P-0006",
        "Grace Kim",
        &[("S-LAX-01", "treatment_center_physician")],
    ),
    (
        "P-0007",
        "Camille Durand",
        &[
            ("S-PAR-01", "treatment_center_nurse"),
            ("S-PAR-01", "apheresis_operator"),
        ],
    ),
    (
        "P-0008",
        "Hugo Bernard",
        &[("S-PAR-01", "treatment_center_physician")],
    ),
    (
        "P-0009",
        "Olivia Chen",
        &[
            ("S-SYD-01", "treatment_center_nurse"),
            ("S-SYD-01", "apheresis_operator"),
        ],
    ),
    (
        "P-0010",
        "Jack Wilson",
        &[("S-SYD-01", "treatment_center_physician")],
    ),
    (
        "P-0011",
        "Samuel Osei",
        &[
            ("S-BOS-01", "qa_releaser"),
            ("S-BOS-01", "manufacturing_operator"),
        ],
    ),
];

/// Per center: (nurse, physician), by index into `CENTERS`.
const CENTER_STAFF: [(&str, &str); 3] = [
    ("P-0005", "P-0006"),
    ("P-0007", "P-0008"),
    ("P-0009", "P-0010"),
];
const OPERATORS: [&str; 2] = ["P-0002", "P-0011"];
const QA: [&str; 2] = ["P-0001", "P-0011"];
const ANALYST: &str = "P-0003";
/// The steward who records reference data and sets signing secrets.
pub const STEWARD: &str = "person/P-0001";

struct ProductDef {
    code: &'static str,
    name: &'static str,
    isbt: &'static str,
    vector: &'static str,
    lot: &'static str,
}

const PRODUCTS: [ProductDef; 2] = [
    ProductDef {
        code: "CART-19",
        name: "Autologous anti-CD19 CAR-T cells",
        isbt: "S0001",
        vector: "LV-CD19",
        lot: "LV19-2026-014",
    },
    ProductDef {
        code: "CART-BCMA",
        name: "Autologous anti-BCMA CAR-T cells",
        isbt: "S0002",
        vector: "LV-BCMA",
        lot: "LVB-2026-003",
    },
];

const STEPS: &[(&str, &str, &str)] = &[
    (
        "ENROL",
        "Patient enrolled and apheresis scheduled",
        "commissioning",
    ),
    ("COLLECT", "Apheresis collection", "collecting"),
    (
        "SHIP-OUT",
        "Shipment of starting material to manufacturing",
        "shipping",
    ),
    (
        "RECEIVE-MFG",
        "Receipt of starting material at manufacturing",
        "receiving",
    ),
    (
        "MANUFACTURE",
        "Activation, transduction and expansion",
        "assembling",
    ),
    ("CRYO", "Cryopreservation of the final product", "storing"),
    ("QC-TEST", "Release testing", "inspecting"),
    (
        "SHIP-TC",
        "Shipment of final product to the treatment center",
        "shipping",
    ),
    (
        "RECEIVE-TC",
        "Receipt of final product at the treatment center",
        "receiving",
    ),
    ("THAW", "Thaw at the bedside", "unpacking"),
    ("INFUSE", "Infusion", "dispensing"),
];

/// A request before ordering: when its source sends it, and what it does to which chains.
struct Req {
    send_at: i64,
    order: usize,
    line: String,
    /// (patient index, state after this request).
    effects: Vec<(usize, &'static str)>,
    fault: Option<(&'static str, Vec<usize>, String)>,
    /// The fact's own instant (seconds): left out when after `until`.
    occurred: i64,
}

struct Gen {
    rng: ChaCha8Rng,
    reqs: Vec<Req>,
    order: usize,
    /// When each chain's last request was sent: a chain's sources send in order.
    last_sent: std::collections::HashMap<usize, i64>,
}

impl Gen {
    /// Queues request `r` once more, sent at `send_at`, as the fault it injects.
    fn push_copy(&mut self, r: usize, send_at: i64, fault: (&'static str, Vec<usize>, String)) {
        let (line, occurred) = (self.reqs[r].line.clone(), self.reqs[r].occurred);
        self.order += 1;
        self.reqs.push(Req {
            send_at,
            order: self.order,
            line,
            effects: Vec::new(),
            fault: Some(fault),
            occurred,
        });
    }

    /// When a request about `chains` is sent: at `earliest`, but after each chain's last
    /// request (a chain's sources send in order); noted as their last.
    fn send_after(&mut self, chains: &[usize], earliest: i64) -> i64 {
        let last = chains
            .iter()
            .filter_map(|idx| self.last_sent.get(idx).copied())
            .max()
            .unwrap_or(i64::MIN);
        let send_at = earliest.max(last.saturating_add(1));
        for idx in chains {
            self.last_sent.insert(*idx, send_at);
        }
        send_at
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(u64::try_from(hi - lo + 1).unwrap_or(1)) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn push(
        &mut self,
        send_at: i64,
        occurred: i64,
        line: Value,
        effects: Vec<(usize, &'static str)>,
    ) -> usize {
        self.order += 1;
        self.reqs.push(Req {
            send_at,
            order: self.order,
            line: line.to_string(),
            effects,
            fault: None,
            occurred,
        });
        self.reqs.len() - 1
    }
}

fn ts(seconds: i64) -> Result<Timestamp, SimulateError> {
    Timestamp::from_second(seconds).map_err(|e| SimulateError::TimeOutOfRange(e.to_string()))
}

/// An instant in a zone, RFC 9557, as a source sends it.
fn at(seconds: i64, zone: &str) -> Result<String, SimulateError> {
    let tz = TimeZone::get(zone).map_err(|e| SimulateError::Zone {
        zone: zone.to_string(),
        reason: e.to_string(),
    })?;
    Ok(ts(seconds)?.to_zoned(tz).to_string())
}

fn utc(seconds: i64) -> Result<String, SimulateError> {
    Ok(ts(seconds)?.to_string())
}

fn events_line(body: Value) -> Value {
    json!({"endpoint": EVENTS_ENDPOINT, "body": body})
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const MOD37: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// A DIN's barcode data as scanned: `=` + DIN + type-3 flags (60 + the MOD 37-2 check),
/// or with the check misread.
fn din_barcode(din: &str, misread: bool) -> String {
    let body = din.get(..13).unwrap_or(din);
    let index = mod37_2_check(body).and_then(|k| MOD37.find(k)).unwrap_or(0);
    let index = if misread { (index + 1) % 37 } else { index };
    format!("={body}{}", 60 + index)
}

/// Generates the network and the journeys.
pub fn generate(options: &SimulateOptions) -> Result<Simulation, SimulateError> {
    if !(0.0..=1.0).contains(&options.fault_rate) {
        return Err(SimulateError::Options(format!(
            "fault rate {} is not between 0 and 1",
            options.fault_rate
        )));
    }
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        reqs: Vec::new(),
        order: 0,
        last_sent: std::collections::HashMap::new(),
    };
    let start = options.start.as_second() - options.start.as_second().rem_euclid(60);
    let reference_at = start - 30 * DAY;
    let secrets = reference_data(&mut g, reference_at)?;
    let mut patients: Vec<Patient> = Vec::new();
    let span = i64::from(options.enrolment_days.max(1)) * DAY;
    let n = options.patients;
    // Exactly round(n * rate) faulty journeys, at seeded places, of every kind in turn.
    let count = ((n as f64) * options.fault_rate).round() as usize;
    let mut slots: Vec<usize> = (0..n).collect();
    for k in 0..count.min(n) {
        let j = k + g.below((n - k) as u64) as usize;
        slots.swap(k, j);
    }
    let mut chosen: Vec<usize> = slots.into_iter().take(count.min(n)).collect();
    chosen.sort_unstable();
    let offset = g.below(FAULT_KINDS.len() as u64) as usize;
    let mut kinds: Vec<Option<&'static str>> = vec![None; n];
    for (k, slot) in chosen.iter().enumerate() {
        kinds[*slot] = Some(FAULT_KINDS[(offset + k) % FAULT_KINDS.len()]);
    }
    if options.bag_swap && n >= 2 {
        kinds[0] = Some("swapped_bag");
    }
    let mut carry: std::collections::VecDeque<&'static str> = std::collections::VecDeque::new();
    let mut i = 0usize;
    while i < n {
        let base = start + span * i as i64 / n.max(1) as i64;
        let t0 = base + g.range(0, 8) * HOUR;
        let center = CENTERS[g.below(3) as usize];
        let product = g.below(4) == 0;
        let mut fault = kinds[i].or_else(|| carry.pop_front());
        if let Some(pair_kind @ ("swapped_bag" | "consolidated_swap")) = fault {
            if i + 1 < n {
                // Two patients collected the same day at the same center, shipped
                // together; the partner's own fault, if any, goes to the next journey.
                if let Some(k) = kinds[i + 1] {
                    carry.push_back(k);
                }
                let a = new_patient(&mut g, i, t0, center, product, false, &mut patients)?;
                let b = new_patient(
                    &mut g,
                    i + 1,
                    t0 + HOUR,
                    center,
                    product,
                    false,
                    &mut patients,
                )?;
                // Collected an hour apart, on the same machine.
                patients[b].collected = patients[a].collected + HOUR;
                if pair_kind == "swapped_bag" {
                    swapped_pair(&mut g, &patients, a, b)?;
                } else {
                    consolidated_pair(&mut g, &patients, a, b)?;
                }
                i += 2;
                continue;
            }
            fault = Some("wrong_seal");
        }
        let two_bags = fault == Some("partial_shipment");
        let p = new_patient(&mut g, i, t0, center, product, two_bags, &mut patients)?;
        journey(&mut g, &patients[p], p, fault, &secrets)?;
        if fault == Some("returned_shipment") {
            let q = recollected(&mut g, p, &mut patients)?;
            journey(&mut g, &patients[q], q, None, &secrets)?;
        }
        i += 1;
    }
    // Reference data first (in order), then every request in the order its source sends it.
    let until = options.until.map(|t| t.as_second());
    let mut reqs = std::mem::take(&mut g.reqs);
    reqs.retain(|r| until.is_none_or(|u| r.occurred <= u && r.send_at <= u));
    reqs.sort_by_key(|r| (r.send_at, r.order));
    let mut sim = Simulation::default();
    let mut state: Vec<&'static str> = vec![""; patients.len()];
    for (n, r) in reqs.into_iter().enumerate() {
        for (p, s) in &r.effects {
            if let Some(slot) = state.get_mut(*p) {
                *slot = s;
            }
        }
        if let Some((kind, ps, detail)) = r.fault {
            sim.faults.push(Fault {
                kind: kind.to_string(),
                cois: ps
                    .iter()
                    .filter_map(|p| patients.get(*p))
                    .map(|p| p.coi.clone())
                    .collect(),
                line: n + 1,
                detail,
            });
        }
        sim.lines.push(r.line);
    }
    for (p, s) in patients.iter().zip(state) {
        if !s.is_empty() {
            sim.chains.push(ExpectedChain {
                coi: p.coi.clone(),
                state: s.to_string(),
            });
        }
    }
    Ok(sim)
}

/// Sites, source systems, steps, products, people, equipment, lots, crosswalks and the
/// signing secrets of everyone who signs. Returns nothing secret to the ledger.
fn reference_data(g: &mut Gen, at_s: i64) -> Result<Vec<(String, String)>, SimulateError> {
    let when = at(at_s, "UTC")?;
    let from = utc(at_s)?;
    let until = utc(at_s + 4 * 365 * DAY)?;
    let expiry = until.get(..10).unwrap_or("2030-12-31").to_string();
    let mut n = 0usize;
    let mut register = |g: &mut Gen, event_type: &str, data: Value| {
        n += 1;
        let stream = if event_type == "crosswalk.mapped" {
            let text = |k: &str| {
                data.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            autolog_domain::rules::crosswalk_stream(&text("system"), &text("kind"))
        } else {
            autolog_domain::rules::registration_stream(event_type, &data).unwrap_or_default()
        };
        let body = json!({
            "stream": stream, "occurred_at": when, "actor": STEWARD,
            "source": {"system": "mdm", "source_event_id": format!("REF-{n:05}")},
            "body": {"type": event_type, "version": 1, "data": data},
        });
        g.push(at_s, at_s, events_line(body), Vec::new());
    };
    for s in SITES {
        let mut data = json!({
            "site_id": s.id, "name": s.name, "site_types": s.types, "time_zone": s.zone,
            "postal_address": {"lines": ["1 Simulation Way"], "city": s.city, "postal_code": s.postal, "country": s.country},
            "gln": s.gln, "status": "active", "valid_from": from,
        });
        if let Some(fin) = s.fin {
            data["isbt128_fin"] = json!(fin);
        }
        register(g, "site.registered", data);
    }
    let mut systems = vec![
        ("courier-cryo", "logistics", "S-BOM-01"),
        ("mes-bos", "mes", "S-BOS-01"),
        ("lims-fra", "lims", "S-FRA-01"),
        ("qms-net", "qms", "S-BOS-01"),
        ("ltfu-net", "ltfu", "S-BOS-01"),
    ];
    let center_systems: Vec<(String, String)> = CENTERS
        .iter()
        .map(|c| {
            let code = SITES[*c].id[2..5].to_ascii_lowercase();
            (format!("aph-{code}"), format!("emr-{code}"))
        })
        .collect();
    for (c, (aph, emr)) in CENTERS.iter().zip(&center_systems) {
        systems.push((aph.as_str(), "apheresis", SITES[*c].id));
        systems.push((emr.as_str(), "treatment", SITES[*c].id));
    }
    for (id, kind, site) in &systems {
        register(
            g,
            "source_system.registered",
            json!({"system_id": id, "kind": kind, "owning_site_id": site}),
        );
    }
    for (code, description, biz) in STEPS {
        register(
            g,
            "process_step.defined",
            json!({"step_code": code, "description": description, "cbv_biz_step": biz}),
        );
    }
    for p in &PRODUCTS {
        register(g, "product.registered", product(p, &from));
        for data in label_templates(p, &from) {
            register(g, "label_template.defined", data);
        }
    }
    for (id, name, quals) in PEOPLE {
        let q: Vec<Value> = quals
            .iter()
            .map(|(site, role)| json!({"site_id": site, "role": role, "valid_from": from, "valid_until": until}))
            .collect();
        register(
            g,
            "personnel.registered",
            json!({"person_id": id, "printed_name": name, "status": "active", "qualifications": q}),
        );
    }
    let mut equipment = vec![
        ("CRF-BOS-01", "controlled_rate_freezer", "S-BOS-01"),
        ("BIO-BOS-01", "bioreactor", "S-BOS-01"),
        ("BIO-BOS-02", "bioreactor", "S-BOS-01"),
        ("DS-BOM-07", "dry_shipper", "S-BOM-01"),
    ];
    let devices: Vec<String> = CENTERS
        .iter()
        .map(|c| format!("APH-{}-01", &SITES[*c].id[2..5]))
        .collect();
    for (c, d) in CENTERS.iter().zip(&devices) {
        equipment.push((d.as_str(), "apheresis_device", SITES[*c].id));
    }
    for (id, kind, site) in &equipment {
        register(
            g,
            "equipment.registered",
            json!({"equipment_id": id, "equipment_type": kind, "site_id": site, "calibration_valid_until": until, "status": "active"}),
        );
    }
    for p in &PRODUCTS {
        register(
            g,
            "material_lot.registered",
            json!({"material": p.vector, "supplier": "Vector Biologics Inc.", "lot": p.lot, "expiry": expiry, "status": "released"}),
        );
    }
    register(
        g,
        "material_lot.registered",
        json!({"material": "MEDIA-TX", "supplier": "CellGrow GmbH", "lot": "TX-88121", "expiry": expiry, "status": "released"}),
    );
    // Each source system's own codes, mapped to the canonical ids.
    let mut crosswalks: Vec<(String, &str, String, String)> = Vec::new();
    for s in SITES {
        crosswalks.push((
            "courier-cryo".into(),
            "site",
            s.local.to_string(),
            s.id.to_string(),
        ));
    }
    crosswalks.push(("mes-bos".into(), "site", "BOS1".into(), "S-BOS-01".into()));
    crosswalks.push((
        "mes-bos".into(),
        "person",
        "dokafor".into(),
        "P-0002".into(),
    ));
    crosswalks.push((
        "mes-bos".into(),
        "process_step",
        "OP-020".into(),
        "MANUFACTURE".into(),
    ));
    crosswalks.push((
        "mes-bos".into(),
        "process_step",
        "OP-090".into(),
        "CRYO".into(),
    ));
    crosswalks.push((
        "lims-fra".into(),
        "site",
        "FRA-QC".into(),
        "S-FRA-01".into(),
    ));
    crosswalks.push((
        "lims-fra".into(),
        "person",
        "AWEBER".into(),
        "P-0003".into(),
    ));
    for ((aph, emr), c) in center_systems.iter().zip(CENTERS) {
        crosswalks.push((
            aph.clone(),
            "site",
            SITES[c].local.to_string(),
            SITES[c].id.to_string(),
        ));
        crosswalks.push((
            emr.clone(),
            "site",
            SITES[c].local.to_string(),
            SITES[c].id.to_string(),
        ));
        crosswalks.push((emr.clone(), "process_step", "ADMIN".into(), "INFUSE".into()));
    }
    for (system, kind, local, canonical) in crosswalks {
        register(
            g,
            "crosswalk.mapped",
            json!({"system": system, "kind": kind, "local_code": local, "canonical_id": canonical, "valid_from": from}),
        );
    }
    // Everyone who signs (releases, deviation closures) re-authenticates with a secret.
    let mut secrets = Vec::new();
    for person in QA {
        if secrets.iter().any(|(p, _): &(String, String)| p == person) {
            continue;
        }
        let secret = format!("sim-{:016x}-{:08x}", g.rng.next_u64(), g.rng.next_u32());
        let line = json!({"endpoint": SIGNING_SECRET_ENDPOINT, "person_id": person, "secret": secret, "set_by": STEWARD});
        g.push(at_s, at_s, line, Vec::new());
        secrets.push((person.to_string(), secret));
    }
    Ok(secrets)
}

/// How a product's bags, final units and shippers are labelled (issue 21): ISBT 128 codes
/// of the simulated products are fictitious (ICCBBA's tables are licensed).
fn label_templates(p: &ProductDef, from: &str) -> Vec<Value> {
    let collection = format!("S9{}", &p.isbt[2..]);
    [
        (
            "BAG",
            "collection_bag",
            100,
            70,
            Some(collection.as_str()),
            Some(72),
            "patient_key",
        ),
        ("UNIT", "final_unit", 100, 70, None, None, "patient_key"),
        ("SHIPPER", "shipper", 150, 100, None, None, "coi_only"),
    ]
    .into_iter()
    .map(|(tag, kind, w, h, code, hours, patient)| {
        let mut t = json!({
            "template_id": format!("LT-{}-{tag}", p.code), "product_code": p.code,
            "container_kind": kind, "width_mm": w, "height_mm": h, "media": "roll",
            "language": "en", "patient_identification": patient, "status": "active",
            "valid_from": from,
        });
        if let Some(code) = code {
            t["isbt128_product_code"] = json!(code);
        }
        if let Some(hours) = hours {
            t["expiry_hours"] = json!(hours);
        }
        t
    })
    .collect()
}

fn product(p: &ProductDef, from: &str) -> Value {
    let steps: Vec<Value> = [
        ("ENROL", &["treatment_center"][..]),
        ("COLLECT", &["apheresis_center"][..]),
        ("SHIP-OUT", &["apheresis_center", "logistics_depot"][..]),
        ("RECEIVE-MFG", &["manufacturing_site"][..]),
        ("MANUFACTURE", &["manufacturing_site"][..]),
        ("CRYO", &["manufacturing_site"][..]),
        ("QC-TEST", &["laboratory", "manufacturing_site"][..]),
        ("SHIP-TC", &["manufacturing_site", "logistics_depot"][..]),
        ("RECEIVE-TC", &["treatment_center"][..]),
        ("THAW", &["treatment_center"][..]),
        ("INFUSE", &["treatment_center"][..]),
    ]
    .iter()
    .map(|(code, types)| json!({"step_code": code, "site_types": types}))
    .collect();
    json!({
        "product_code": p.code, "name": p.name, "isbt128_product_code": p.isbt,
        "process": {
            "steps": steps,
            "windows": [
                {"from_step": "COLLECT", "to_step": "RECEIVE-MFG", "max_minutes": 2880},
                {"from_step": "COLLECT", "to_step": "CRYO", "max_minutes": 40320},
                {"from_step": "THAW", "to_step": "INFUSE", "max_minutes": 30}
            ],
            "release_tests": [
                {"test_code": "VIABILITY", "description": "Viable CD3+ cells", "method": "flow cytometry", "unit": "%", "min": 70},
                {"test_code": "CAR-EXPR", "description": "CAR expression", "method": "flow cytometry", "unit": "%", "min": 15},
                {"test_code": "VCN", "description": "Vector copy number", "method": "ddPCR", "unit": "copies/cell", "max": 5},
                {"test_code": "STERILITY", "description": "Sterility", "method": "Ph. Eur. 2.6.27", "expected": "negative"},
                {"test_code": "ENDOTOXIN", "description": "Bacterial endotoxins", "method": "LAL", "unit": "EU/mL", "max": 5},
                {"test_code": "MYCOPLASMA", "description": "Mycoplasma", "method": "NAT", "expected": "not detected"}
            ]
        },
        "storage_temperature": {"min_celsius": -196, "max_celsius": -150},
        "retention_class": "ATMP-30Y", "retention_years": 30,
        "retention_policies": [
            {"jurisdiction": "US", "years": 15, "from": "administration"},
            {"jurisdiction": "EU", "years": 30, "from": "administration"}
        ],
        "status": "active", "valid_from": from,
    })
}

#[derive(Clone)]
struct Patient {
    key: String,
    /// What the journey's source ids, handoffs, containers and batch are named after: the
    /// key, or the key and the episode for a re-collection.
    source: String,
    /// The chain this episode collects again, and why.
    previous: Option<(String, &'static str)>,
    /// The number the episode's COI and DINs are made from.
    seq: usize,
    coi: String,
    center: usize,
    product: usize,
    dins: Vec<String>,
    units: Vec<String>,
    t0: i64,
    collected: i64,
}

fn new_patient(
    g: &mut Gen,
    i: usize,
    t0: i64,
    center: usize,
    second_product: bool,
    two_bags: bool,
    patients: &mut Vec<Patient>,
) -> Result<usize, SimulateError> {
    let product = usize::from(second_product);
    let patient = episode(g, i + 1, None, t0, center, product, two_bags)?;
    patients.push(patient);
    Ok(patients.len() - 1)
}

/// The patient of journey `p` collected again after a returned shipment: the same patient
/// and product, a new chain that names the first, new DINs.
fn recollected(g: &mut Gen, p: usize, patients: &mut Vec<Patient>) -> Result<usize, SimulateError> {
    let Some(first) = patients.get(p).cloned() else {
        return Err(SimulateError::Options(format!(
            "no journey {p} to collect again"
        )));
    };
    let t0 = first.collected + 6 * DAY;
    let mut again = episode(
        g,
        first.seq + RECOLLECTION_OFFSET,
        Some(&first),
        t0,
        first.center,
        first.product,
        false,
    )?;
    again.previous = Some((first.coi.clone(), "shipment_returned"));
    patients.push(again);
    Ok(patients.len() - 1)
}

/// A re-collection's chain and DINs are numbered this far after the first episode's.
const RECOLLECTION_OFFSET: usize = 250_000;

/// One episode of a patient: its COI, DINs and final units, numbered by `seq`; a new
/// patient, or (`first`) the same patient collected again.
fn episode(
    g: &mut Gen,
    seq: usize,
    first: Option<&Patient>,
    t0: i64,
    center: usize,
    product: usize,
    two_bags: bool,
) -> Result<Patient, SimulateError> {
    let year = ts(t0)?.to_zoned(TimeZone::UTC).year();
    let yy = u8::try_from(year.rem_euclid(100)).unwrap_or(0);
    let fin = Fin::parse("fin", "S9999")?;
    let coi = Coi::new(&fin, yy, &format!("{:06}", seq % 1_000_000))?;
    let units = ["A0", "B0"]
        .iter()
        .map(|d| UnitId::new(&coi, PRODUCTS[product].isbt, d).map(|u| u.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let site_fin = SITES[center].fin.unwrap_or("S9999");
    let bags = if two_bags { 2 } else { 1 + g.below(2) as usize };
    let dins = (0..bags)
        .map(|b| {
            Din::parse(
                "din",
                &format!("{site_fin}{yy:02}{:06}", (seq * 2 + b) % 1_000_000),
            )
            .map(|d| d.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let collected = t0 + g.range(3, 10) * DAY + g.range(7, 10) * HOUR;
    let (key, source) = match first {
        Some(first) => (first.key.clone(), format!("{}-2", first.source)),
        None => {
            let key = format!("PK-{:08X}-{seq:06}", g.rng.next_u32());
            (key.clone(), key)
        }
    };
    Ok(Patient {
        key,
        source,
        previous: None,
        seq,
        coi: coi.to_string(),
        center,
        product,
        dins,
        units,
        t0,
        collected,
    })
}

/// Builds the append request of one step on a patient's chain.
struct Ctx<'a> {
    p: &'a Patient,
    idx: usize,
    secrets: &'a [(String, String)],
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        g: &mut Gen,
        id: &str,
        occurred: i64,
        site: usize,
        system: &str,
        actor: &str,
        kind: &str,
        data: Value,
        state: &'static str,
    ) -> Result<usize, SimulateError> {
        let body = self.body(id, occurred, site, system, actor, kind, data)?;
        Ok(self.push(g, occurred, events_line(body), state))
    }

    /// Queues a request line of this chain, sent within minutes of `occurred`, after the
    /// chain's previous request.
    fn push(&self, g: &mut Gen, occurred: i64, line: Value, state: &'static str) -> usize {
        // Sources send within minutes of the fact, each chain's requests in order.
        let delay = g.range(1, 20) * 60;
        let send_at = g.send_after(&[self.idx], occurred + delay);
        let effects = if state.is_empty() {
            Vec::new()
        } else {
            vec![(self.idx, state)]
        };
        g.push(send_at, occurred, line, effects)
    }

    /// The append request body of one event on this chain (signed where its type is).
    #[allow(clippy::too_many_arguments)]
    fn body(
        &self,
        id: &str,
        occurred: i64,
        site: usize,
        system: &str,
        actor: &str,
        kind: &str,
        mut data: Value,
    ) -> Result<Value, SimulateError> {
        if let Some(field) = autolog_domain::access::signature::signer_field(kind) {
            let signer = data[field].as_str().unwrap_or_default().to_string();
            let secret = self
                .secrets
                .iter()
                .find(|(p, _)| *p == signer)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            data["signature"] = json!({"signer_id": signer, "secret": secret});
        }
        let body = json!({
            "stream": format!("coi/{}", self.p.coi),
            "occurred_at": at(occurred, SITES[site].zone)?,
            "actor": format!("person/{actor}"),
            "site": SITES[site].id,
            "source": {"system": system, "source_event_id": format!("{}/{id}", self.p.source)},
            "body": {"type": kind, "version": 1, "data": data},
        });
        Ok(body)
    }
}

fn enrolment(g: &mut Gen, p: &Patient, idx: usize) -> Result<(), SimulateError> {
    let site = &SITES[p.center];
    let (_, physician) = CENTER_STAFF[p.center];
    let emr = format!("emr-{}", site.id[2..5].to_ascii_lowercase());
    let body = json!({
        "occurred_at": at(p.t0, site.zone)?,
        "actor": format!("person/{physician}"),
        "site": site.id,
        "source": {"system": emr, "source_event_id": format!("enrol/{}", p.source)},
        "patient_key": p.key,
        "product_code": PRODUCTS[p.product].code,
        "treatment_site_id": site.id,
        "coi": p.coi,
        "upstream_system": emr,
    });
    let mut body = body;
    if let Some((previous, reason)) = &p.previous {
        body["previous_coi"] = json!(previous);
        body["recollection_reason"] = json!(reason);
    }
    g.push(
        p.t0 + 300,
        p.t0,
        json!({"endpoint": CHAINS_ENDPOINT, "body": body}),
        vec![(idx, "enrolled")],
    );
    Ok(())
}

fn collection(g: &mut Gen, c: &Ctx) -> Result<(), SimulateError> {
    let p = c.p;
    let (nurse, _) = CENTER_STAFF[p.center];
    let site = &SITES[p.center];
    let aph = format!("aph-{}", site.id[2..5].to_ascii_lowercase());
    c.step(
        g, "collect", p.collected, p.center, &aph, nurse, "chain.collected",
        json!({
            "collection_site_id": site.id, "operator_id": nurse, "device_id": format!("APH-{}-01", &site.id[2..5]),
            "started_at": at(p.collected - 4 * HOUR, site.zone)?, "ended_at": at(p.collected, site.zone)?, "dins": p.dins,
        }),
        "collected",
    )?;
    Ok(())
}

/// One custody leg: who ships what from where to whom.
struct Route<'a> {
    from: usize,
    to: usize,
    ship: &'static str,
    receive: &'static str,
    sender: &'static str,
    receiver: &'static str,
    tag: &'static str,
    range: (f64, f64),
    log: (f64, f64),
    shipped: &'a [String],
    /// The chain's state once received.
    after: &'static str,
}

/// The starting material's leg to Boston, or the final product's back to the center.
fn route<'a>(c: &Ctx<'a>, to_manufacturing: bool) -> Route<'a> {
    let p = c.p;
    let (nurse, _) = CENTER_STAFF[p.center];
    let operator = OPERATORS[c.idx % 2];
    if to_manufacturing {
        Route {
            from: p.center,
            to: BOS,
            ship: "SHIP-OUT",
            receive: "RECEIVE-MFG",
            sender: nurse,
            receiver: operator,
            tag: "out",
            range: (2.0, 8.0),
            log: (3.1, 6.8),
            shipped: &p.dins,
            after: "received_at_manufacturing",
        }
    } else {
        Route {
            from: BOS,
            to: p.center,
            ship: "SHIP-TC",
            receive: "RECEIVE-TC",
            sender: operator,
            receiver: nurse,
            tag: "tc",
            range: (-196.0, -150.0),
            log: (-190.0, -172.5),
            shipped: &p.units,
            after: "received_at_treatment_center",
        }
    }
}

/// Handoff at `leave`, receipt at `arrive`; `fault` changes them. Returns the receipt's
/// request index (the refused handoff's, for an expired unit).
#[allow(clippy::too_many_arguments)]
fn leg(
    g: &mut Gen,
    c: &Ctx,
    to_manufacturing: bool,
    leave: i64,
    arrive: i64,
    fault: Option<&'static str>,
    foreign: Option<&str>,
    hold_state: &'static str,
) -> Result<usize, SimulateError> {
    let p = c.p;
    let r = route(c, to_manufacturing);
    let tag = r.tag;
    let promised = if fault == Some("late_arrival") {
        arrive - 6 * HOUR
    } else {
        arrive + 12 * HOUR
    };
    // An expired final unit: the handoff is a hard stop, and the journey ends there.
    let expired = fault == Some("expired_unit") && !to_manufacturing;
    let handoff = c.step(
        g, &format!("handoff-{tag}"), leave, r.from, "courier-cryo", r.sender, "custody.handed_off",
        json!({
            "handoff_id": format!("H-{}-{tag}", p.source), "step_code": r.ship, "from_site_id": SITES[r.from].id,
            "handed_off_by": r.sender, "destination_site_id": SITES[r.to].id, "courier": "WORLD-COURIER",
            "units": r.shipped, "unit_count": r.shipped.len(),
            "container_id": format!("DS-{}-{tag}", p.source), "seal_id": format!("SEAL-{}-{tag}", p.source),
            "expected_arrival_by": utc(promised)?,
            "temperature_range": {"min_celsius": r.range.0, "max_celsius": r.range.1},
        }),
        if expired { "" } else { "in_transit" },
    )?;
    if expired {
        g.reqs[handoff].fault = Some((
            "expired_unit",
            vec![c.idx],
            format!("unit {} shipped after its expiry", p.units[0]),
        ));
        return Ok(handoff);
    }
    receipt(
        g,
        c,
        &r,
        to_manufacturing,
        arrive,
        fault,
        foreign,
        hold_state,
    )
}

/// The receipt of a leg's handoff, as scanned on arrival (with `fault`'s changes, and
/// `foreign` in place of the first bag). Returns its request index.
#[allow(clippy::too_many_arguments)]
fn receipt(
    g: &mut Gen,
    c: &Ctx,
    r: &Route,
    to_manufacturing: bool,
    arrive: i64,
    fault: Option<&'static str>,
    foreign: Option<&str>,
    hold_state: &'static str,
) -> Result<usize, SimulateError> {
    let p = c.p;
    let tag = r.tag;
    let labels = |misread: bool| -> Vec<Value> {
        r.shipped
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let scanned = if to_manufacturing {
                    din_barcode(d, misread && i == 0)
                } else {
                    d.clone()
                };
                json!({"unit": scanned, "coi": p.coi})
            })
            .collect()
    };
    // A returned shipment: the shipper's logger shows the starting material warmed up.
    let log = if fault == Some("returned_shipment") && to_manufacturing {
        (14.0, 19.5)
    } else {
        r.log
    };
    let mut scanned = labels(false);
    if let Some(other) = foreign {
        if let Some(first) = scanned.first_mut() {
            *first = json!({"unit": din_barcode(other, false)});
        }
    }
    let seal = if fault == Some("wrong_seal") {
        format!("SEAL-{}-{tag}-X", p.source)
    } else {
        format!("SEAL-{}-{tag}", p.source)
    };
    let data = |scanned: Vec<Value>| {
        json!({
            "handoff_id": format!("H-{}-{tag}", p.source), "step_code": r.receive, "receiving_site_id": SITES[r.to].id,
            "received_by": r.receiver, "scanned_labels": scanned,
            "container_id": format!("DS-{}-{tag}", p.source), "seal_id": seal, "seal_intact": true,
            "temperature_log": {"min_celsius": log.0, "max_celsius": log.1, "logger_id": "TL-BOM-07"},
        })
    };
    let system = if to_manufacturing {
        "mes-bos"
    } else {
        "courier-cryo"
    };
    let id = format!("receipt-{tag}");
    if fault == Some("misread_check_character") && to_manufacturing {
        // The first scan misreads a check character: refused; the operator rescans.
        let bad = c.step(
            g,
            &id,
            arrive,
            r.to,
            system,
            r.receiver,
            "custody.received",
            data(labels(true)),
            "",
        )?;
        g.reqs[bad].fault = Some((
            "misread_check_character",
            vec![c.idx],
            format!("DIN {} scanned with a wrong check character", p.dins[0]),
        ));
        let rescan = format!("receipt-{tag}-rescan");
        return c.step(
            g,
            &rescan,
            arrive + 600,
            r.to,
            system,
            r.receiver,
            "custody.received",
            data(scanned),
            r.after,
        );
    }
    let state = if hold_state.is_empty() {
        r.after
    } else {
        hold_state
    };
    let at = c.step(
        g,
        &id,
        arrive,
        r.to,
        system,
        r.receiver,
        "custody.received",
        data(scanned),
        state,
    )?;
    if let Some(kind @ ("wrong_seal" | "late_arrival")) = fault {
        g.reqs[at].fault = Some((kind, vec![c.idx], format!("{kind} on the {tag} leg")));
    }
    if fault == Some("returned_shipment") && to_manufacturing {
        g.reqs[at].fault = Some((
            "returned_shipment",
            vec![c.idx],
            format!(
                "starting material of {} arrived at 14.0 to 19.5 °C, returned and collected again",
                p.coi
            ),
        ));
    }
    Ok(at)
}

fn swapped_pair(
    g: &mut Gen,
    patients: &[Patient],
    a: usize,
    b: usize,
) -> Result<(), SimulateError> {
    let (pa, pb) = (&patients[a], &patients[b]);
    let none: &[(String, String)] = &[];
    for (idx, p) in [(a, pa), (b, pb)] {
        enrolment(g, p, idx)?;
        collection(
            g,
            &Ctx {
                p,
                idx,
                secrets: none,
            },
        )?;
    }
    let leave = pb.collected + 2 * HOUR;
    // A's shipment arrives first and is clean; B's carries A's first bag in place of B's.
    leg(
        g,
        &Ctx {
            p: pa,
            idx: a,
            secrets: none,
        },
        true,
        leave,
        leave + 20 * HOUR,
        None,
        None,
        "",
    )?;
    let r = leg(
        g,
        &Ctx {
            p: pb,
            idx: b,
            secrets: none,
        },
        true,
        leave,
        leave + 21 * HOUR,
        None,
        Some(&pa.dins[0]),
        "on_hold",
    )?;
    g.reqs[r].effects.push((a, "on_hold"));
    g.reqs[r].fault = Some((
        "swapped_bag",
        vec![b, a],
        format!(
            "DIN {} of {} scanned in {}'s shipment",
            pa.dins[0], pa.coi, pb.coi
        ),
    ));
    Ok(())
}

/// Two patients' bags in one shipper (a consolidated shipment), their labels swapped:
/// each receipt scans the other patient's bags, and both receipts arrive as one batch
/// request. Both are recorded, both chains held, with alerts.
fn consolidated_pair(
    g: &mut Gen,
    patients: &[Patient],
    a: usize,
    b: usize,
) -> Result<(), SimulateError> {
    let none: &[(String, String)] = &[];
    let pair = [(a, &patients[a]), (b, &patients[b])];
    for (idx, p) in pair {
        enrolment(g, p, idx)?;
        collection(
            g,
            &Ctx {
                p,
                idx,
                secrets: none,
            },
        )?;
    }
    let leave = patients[b].collected + 2 * HOUR;
    let arrive = leave + 20 * HOUR;
    let container = format!("DS-{}-cons", patients[a].source);
    let seal = format!("SEAL-{}-cons", patients[a].source);
    let mut receipts = Vec::new();
    for (k, (idx, p)) in pair.into_iter().enumerate() {
        let c = Ctx {
            p,
            idx,
            secrets: none,
        };
        let (nurse, _) = CENTER_STAFF[p.center];
        let operator = OPERATORS[idx % 2];
        let handoff_id = format!("H-{}-out", p.source);
        c.step(g, "handoff-out", leave, p.center, "courier-cryo", nurse, "custody.handed_off", json!({
            "handoff_id": handoff_id, "step_code": "SHIP-OUT", "from_site_id": SITES[p.center].id,
            "handed_off_by": nurse, "destination_site_id": SITES[BOS].id, "courier": "WORLD-COURIER",
            "units": p.dins, "unit_count": p.dins.len(), "container_id": container, "seal_id": seal,
            "expected_arrival_by": utc(arrive + 12 * HOUR)?,
            "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0},
        }), "in_transit")?;
        // The labels were swapped at packing: this handoff's bags carry the other's labels.
        let other = pair[1 - k].1;
        let scanned: Vec<Value> = other
            .dins
            .iter()
            .map(|d| json!({"unit": din_barcode(d, false), "coi": other.coi}))
            .collect();
        receipts.push(c.body("receipt-out", arrive, BOS, "mes-bos", operator, "custody.received", json!({
            "handoff_id": handoff_id, "step_code": "RECEIVE-MFG", "receiving_site_id": SITES[BOS].id,
            "received_by": operator, "scanned_labels": scanned, "container_id": container,
            "seal_id": seal, "seal_intact": true,
            "temperature_log": {"min_celsius": 3.1, "max_celsius": 6.8, "logger_id": "TL-BOM-07"},
        }))?);
    }
    let send_at = g.send_after(&[a, b], arrive + 600);
    let r = g.push(
        send_at,
        arrive,
        events_line(Value::Array(receipts)),
        vec![(a, "on_hold"), (b, "on_hold")],
    );
    g.reqs[r].fault = Some((
        "consolidated_swap",
        vec![a, b],
        format!(
            "labels of {} and {} swapped in one shipper, received as one batch",
            patients[a].coi, patients[b].coi
        ),
    ));
    Ok(())
}

/// One patient's journey from enrolment to follow-up, with at most one injected fault.
fn journey(
    g: &mut Gen,
    p: &Patient,
    idx: usize,
    fault: Option<&'static str>,
    secrets: &[(String, String)],
) -> Result<(), SimulateError> {
    let c = Ctx { p, idx, secrets };
    enrolment(g, p, idx)?;
    collection(g, &c)?;
    let leave = p.collected + g.range(1, 3) * HOUR;
    let arrive = leave + g.range(16, 36) * HOUR;
    // A partial shipment: of two bags, the first goes and the second is kept back.
    let shipped = if fault == Some("partial_shipment") {
        Patient {
            dins: p.dins[..1].to_vec(),
            ..p.clone()
        }
    } else {
        p.clone()
    };
    let s = Ctx {
        p: &shipped,
        idx,
        secrets,
    };
    let hold = matches!(
        fault,
        Some("wrong_seal" | "late_arrival" | "returned_shipment")
    );
    let r = leg(
        g,
        &s,
        true,
        leave,
        arrive,
        fault,
        None,
        if hold { "on_hold" } else { "" },
    )?;
    if fault == Some("duplicate") {
        // The courier's system resends its receipt an hour later.
        let send_at = g.reqs[r].send_at + HOUR;
        g.push_copy(
            r,
            send_at,
            (
                "duplicate",
                vec![idx],
                "the receipt resent by a flaky source system".into(),
            ),
        );
    }
    if fault == Some("returned_shipment") {
        return_shipment(g, &c, arrive)?;
    }
    if hold {
        return Ok(());
    }
    let made = manufacture(g, &c, &shipped, fault, arrive)?;
    let qc1 = testing(g, &s, fault, &made)?;
    release_and_treatment(g, &s, fault, &made, qc1)
}

/// The starting material sent back from manufacturing to the collection site (its
/// receipt failed reconciliation): the return and its receipt, recorded on the held chain.
fn return_shipment(g: &mut Gen, c: &Ctx, arrive: i64) -> Result<(), SimulateError> {
    let p = c.p;
    let (nurse, _) = CENTER_STAFF[p.center];
    let operator = OPERATORS[c.idx % 2];
    let (back, home) = (arrive + DAY, arrive + 2 * DAY);
    let handoff_id = format!("H-{}-return", p.source);
    let (container, seal) = (
        format!("DS-{}-out", p.source),
        format!("SEAL-{}-return", p.source),
    );
    c.step(g, "handoff-return", back, BOS, "mes-bos", operator, "custody.handed_off", json!({
        "handoff_id": handoff_id, "step_code": "SHIP-TC", "from_site_id": SITES[BOS].id,
        "handed_off_by": operator, "destination_site_id": SITES[p.center].id, "courier": "WORLD-COURIER",
        "units": p.dins, "unit_count": p.dins.len(), "container_id": container, "seal_id": seal,
        "expected_arrival_by": utc(home + 12 * HOUR)?,
        "temperature_range": {"min_celsius": 2.0, "max_celsius": 25.0},
    }), "")?;
    let scanned: Vec<Value> = p
        .dins
        .iter()
        .map(|d| json!({"unit": din_barcode(d, false), "coi": p.coi}))
        .collect();
    let aph = format!("aph-{}", SITES[p.center].id[2..5].to_ascii_lowercase());
    c.step(g, "receipt-return", home, p.center, &aph, nurse, "custody.received", json!({
        "handoff_id": handoff_id, "step_code": "RECEIVE-TC", "receiving_site_id": SITES[p.center].id,
        "received_by": nurse, "scanned_labels": scanned, "container_id": container,
        "seal_id": seal, "seal_intact": true,
        "temperature_log": {"min_celsius": 12.0, "max_celsius": 21.0, "logger_id": "TL-BOM-07"},
    }), "")?;
    Ok(())
}

/// What manufacturing made: the batch, when it was cryopreserved, whether a deviation
/// was opened.
struct Made {
    batch: String,
    cryo: i64,
    deviation: bool,
    /// The request that records the final units (an expired unit's expiry is set on it
    /// once the release time is known).
    units_request: usize,
}

/// Manufacturing: 2-3 weeks of manufacture and cryopreservation at Boston, from the bags
/// that arrived (`shipped`; `c` is the whole collection).
fn manufacture(
    g: &mut Gen,
    c: &Ctx,
    shipped: &Patient,
    fault: Option<&'static str>,
    arrive: i64,
) -> Result<Made, SimulateError> {
    let (p, idx) = (c.p, c.idx);
    let operator = OPERATORS[idx % 2];
    let batch = format!("B-{}", p.source);
    let m0 = arrive + g.range(2, 6) * HOUR;
    let created = |dins: &[String]| {
        json!({
            "batch_id": batch, "site_id": "S-BOS-01", "created_by": operator, "source_dins": dins,
            "mes_system": "mes-bos", "mes_batch_number": format!("MES-{}", &p.source[3..]),
        })
    };
    let batch_step = if fault == Some("partial_shipment") {
        // The MES names both bags: the one kept back is refused, the batch resent.
        let bad = c.step(
            g,
            "batch",
            m0,
            BOS,
            "mes-bos",
            operator,
            "batch.created",
            created(&p.dins),
            "",
        )?;
        g.reqs[bad].fault = Some((
            "partial_shipment",
            vec![idx],
            format!(
                "batch names DIN {} kept back at {}",
                p.dins[p.dins.len() - 1],
                SITES[p.center].id
            ),
        ));
        "batch-resent"
    } else {
        "batch"
    };
    c.step(
        g,
        batch_step,
        m0 + 600,
        BOS,
        "mes-bos",
        operator,
        "batch.created",
        created(&shipped.dins),
        "",
    )?;
    let made = m0 + g.range(9, 14) * DAY;
    manufacture_step(g, c, fault, m0, made)?;
    consumption(g, c, fault, &batch, m0)?;
    let deviation = g.chance(0.08);
    if deviation {
        c.step(g, "dev-open", m0 + 2 * DAY, BOS, "qms-net", operator, "deviation.opened", json!({
            "deviation_id": format!("DEV-{}", &p.source[3..]), "batch_id": batch, "site_id": "S-BOS-01", "opened_by": operator,
            "category": "process", "summary": "incubator temperature alarm during expansion",
        }), "")?;
    }
    let cryo = made + g.range(2, 6) * HOUR;
    cryopreservation(g, c, fault, cryo)?;
    let units = json!({
        "batch_id": batch, "site_id": "S-BOS-01", "recorded_by": operator, "units": p.units,
    });
    let units_request = c.step(
        g,
        "units",
        cryo + HOUR,
        BOS,
        "mes-bos",
        operator,
        "batch.units_produced",
        units,
        "",
    )?;
    Ok(Made {
        batch,
        cryo,
        deviation,
        units_request,
    })
}

/// The MANUFACTURE step; with `unmapped_code`, first sent with the MES's own site code.
fn manufacture_step(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    m0: i64,
    made: i64,
) -> Result<(), SimulateError> {
    let operator = OPERATORS[c.idx % 2];
    let step = |site: &str| -> Result<Value, SimulateError> {
        Ok(json!({
            "step_code": "MANUFACTURE", "site_id": site, "performed_by": operator,
            "equipment_ids": [format!("BIO-BOS-0{}", 1 + c.idx % 2)], "started_at": utc(m0 + HOUR)?, "ended_at": utc(made)?,
        }))
    };
    let (id, resend) = if fault == Some("unmapped_code") {
        // The MES sends its own site code: refused, then resent once mapped.
        let bad = c.step(
            g,
            "manufacture",
            m0 + HOUR,
            BOS,
            "mes-bos",
            operator,
            "chain.step_performed",
            step("BOS1")?,
            "",
        )?;
        g.reqs[bad].fault = Some((
            "unmapped_code",
            vec![c.idx],
            "MES site code BOS1 sent in place of S-BOS-01".into(),
        ));
        ("manufacture-resent", 2 * HOUR)
    } else {
        ("manufacture", HOUR)
    };
    c.step(
        g,
        id,
        m0 + resend,
        BOS,
        "mes-bos",
        operator,
        "chain.step_performed",
        step("S-BOS-01")?,
        "in_manufacturing",
    )?;
    Ok(())
}

/// The vector consumed. With `late_entry`, from a lot of its own that is recalled two days
/// later, and the consumption entered on the third day: recorded, and the recall reaches it.
fn consumption(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    batch: &str,
    m0: i64,
) -> Result<(), SimulateError> {
    let p = c.p;
    let operator = OPERATORS[c.idx % 2];
    let product = &PRODUCTS[p.product];
    let late = fault == Some("late_entry");
    let lot = if late {
        format!("LATE-{}", &p.source[3..])
    } else {
        product.lot.to_string()
    };
    let data = json!({
        "batch_id": batch, "material": product.vector, "lot": lot, "quantity": 2.5,
        "quantity_unit": "mL", "site_id": "S-BOS-01", "recorded_by": operator, "step_code": "MANUFACTURE",
    });
    if !late {
        c.step(
            g,
            "vector",
            m0 + 3 * HOUR,
            BOS,
            "mes-bos",
            operator,
            "batch.material_consumed",
            data,
            "",
        )?;
        return Ok(());
    }
    let expiry = utc(m0 + 365 * DAY)?;
    let lot_line = |id: &str, at_s: i64, kind: &str, body: Value| -> Result<Value, SimulateError> {
        Ok(events_line(json!({
            "stream": format!("lot/{}/{lot}", product.vector), "occurred_at": at(at_s, "UTC")?,
            "actor": STEWARD, "source": {"system": "qms-net", "source_event_id": format!("{}/{id}", p.source)},
            "body": {"type": kind, "version": 1, "data": body},
        })))
    };
    let registered = lot_line(
        "lot",
        m0 - DAY,
        "material_lot.registered",
        json!({
            "material": product.vector, "supplier": "Vector Biologics Inc.", "lot": lot,
            "expiry": expiry.get(..10).unwrap_or("2030-12-31"), "status": "released",
        }),
    )?;
    g.push(m0 - DAY, m0 - DAY, registered, Vec::new());
    let recall = lot_line(
        "recall",
        m0 + 2 * DAY,
        "material_lot.status_changed",
        json!({"status": "recalled"}),
    )?;
    g.push(m0 + 2 * DAY, m0 + 2 * DAY, recall, Vec::new());
    let body = c.body(
        "vector",
        m0 + 3 * HOUR,
        BOS,
        "mes-bos",
        operator,
        "batch.material_consumed",
        data,
    )?;
    let send_at = m0 + 3 * DAY;
    let r = g.push(send_at, m0 + 3 * HOUR, events_line(body), Vec::new());
    g.reqs[r].fault = Some((
        "late_entry",
        vec![c.idx],
        format!("consumption of lot {lot} entered after its recall, dated before it"),
    ));
    Ok(())
}

/// The CRYO step; with `wrong_utc_offset`, stamped with the MES server's UTC offset.
fn cryopreservation(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    cryo: i64,
) -> Result<(), SimulateError> {
    let operator = OPERATORS[c.idx % 2];
    let r = c.step(
        g,
        "cryo",
        cryo,
        BOS,
        "mes-bos",
        operator,
        "chain.step_performed",
        json!({
            "step_code": "CRYO", "site_id": "S-BOS-01", "performed_by": operator,
            "equipment_ids": ["CRF-BOS-01"], "started_at": utc(cryo)?,
        }),
        "in_manufacturing",
    )?;
    if fault == Some("wrong_utc_offset") {
        let mut line: Value = serde_json::from_str(&g.reqs[r].line)?;
        line["body"]["occurred_at"] = json!(at(cryo, "UTC")?);
        g.reqs[r].line = line.to_string();
        g.reqs[r].fault = Some((
            "wrong_utc_offset",
            vec![c.idx],
            "CRYO sent at +00:00 from Boston".into(),
        ));
    }
    Ok(())
}

/// Release testing at the Frankfurt laboratory: samples shipped to it, received, tested.
/// With `external_lab`, the lab first scans one sample short. Returns when testing ended.
fn testing(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    made: &Made,
) -> Result<i64, SimulateError> {
    let p = c.p;
    let operator = OPERATORS[c.idx % 2];
    let shipment = format!("SMP-{}", &p.source[3..]);
    let samples = [format!("{shipment}-QC"), format!("{shipment}-RET")];
    let (sent, received) = (made.cryo + 2 * HOUR, made.cryo + 20 * HOUR);
    c.step(
        g,
        "samples-out",
        sent,
        BOS,
        "mes-bos",
        operator,
        "sample.handed_off",
        json!({
            "shipment_id": shipment, "samples": samples, "from_site_id": "S-BOS-01",
            "destination_site_id": "S-FRA-01", "handed_off_by": operator,
        }),
        "",
    )?;
    let receipt = |listed: &[String]| json!({"shipment_id": shipment, "samples": listed, "receiving_site_id": "S-FRA-01", "received_by": ANALYST});
    let id = if fault == Some("external_lab") {
        let bad = c.step(
            g,
            "samples-in",
            received,
            FRA,
            "lims-fra",
            ANALYST,
            "sample.received",
            receipt(&samples[..1]),
            "",
        )?;
        g.reqs[bad].fault = Some((
            "external_lab",
            vec![c.idx],
            format!("the laboratory scanned one of the two samples of {shipment}"),
        ));
        "samples-in-rescan"
    } else {
        "samples-in"
    };
    c.step(
        g,
        id,
        received + 600,
        FRA,
        "lims-fra",
        ANALYST,
        "sample.received",
        receipt(&samples),
        "",
    )?;
    let qc0 = made.cryo + DAY;
    let qc1 = qc0 + g.range(6, 9) * DAY;
    c.step(
        g,
        "qc",
        qc0,
        FRA,
        "lims-fra",
        ANALYST,
        "chain.step_performed",
        json!({
            "step_code": "QC-TEST", "site_id": "S-FRA-01", "performed_by": ANALYST,
            "started_at": utc(qc0)?, "ended_at": utc(qc1)?,
        }),
        "in_testing",
    )?;
    for (k, (code, result, unit)) in release_results(g).into_iter().enumerate() {
        c.step(
            g,
            &format!("result-{code}"),
            qc1 + k as i64 * 600,
            FRA,
            "lims-fra",
            ANALYST,
            "batch.test_result_recorded",
            result_data(&made.batch, code, result, unit),
            "",
        )?;
    }
    Ok(qc1)
}

/// The results of the release tests (all within specification).
fn release_results(g: &mut Gen) -> [(&'static str, Value, Option<&'static str>); 6] {
    [
        ("VIABILITY", json!(70 + g.range(5, 25)), Some("%")),
        ("CAR-EXPR", json!(20 + g.range(5, 40)), Some("%")),
        (
            "VCN",
            json!(g.range(10, 45) as f64 / 10.0),
            Some("copies/cell"),
        ),
        ("STERILITY", json!("negative"), None),
        (
            "ENDOTOXIN",
            json!(g.range(1, 40) as f64 / 10.0),
            Some("EU/mL"),
        ),
        ("MYCOPLASMA", json!("not detected"), None),
    ]
}

fn result_data(batch: &str, code: &str, result: Value, unit: Option<&str>) -> Value {
    let mut data = json!({
        "batch_id": batch, "test_code": code, "method": "per specification", "result": result,
        "site_id": "S-FRA-01", "analyst_id": ANALYST,
    });
    if let Some(u) = unit {
        data["result_unit"] = json!(u);
    }
    data
}

/// The signed release, the final product's shipment, the bedside and follow-up. With
/// `amended_result`, the LIMS corrects a result after the release and the journey stops
/// on the hold that follows; with `expired_unit`, at the refused shipment.
fn release_and_treatment(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    made: &Made,
    qc1: i64,
) -> Result<(), SimulateError> {
    let (p, idx) = (c.p, c.idx);
    let qa = QA[(idx / 2) % 2];
    let release_at = qc1 + g.range(12, 36) * HOUR;
    if made.deviation {
        c.step(g, "dev-close", release_at - 4 * HOUR, BOS, "qms-net", qa, "deviation.closed", json!({
            "deviation_id": format!("DEV-{}", &p.source[3..]), "site_id": "S-BOS-01", "closed_by": qa,
            "disposition": "release_permitted", "rationale": "alarm was a sensor fault; product unaffected",
        }), "")?;
    }
    c.step(
        g,
        "release",
        release_at,
        BOS,
        "qms-net",
        qa,
        "chain.released",
        json!({
            "batch_id": made.batch, "intended_patient_key": p.key, "site_id": "S-BOS-01",
            "released_by": qa, "units": p.units,
        }),
        "released_for_patient",
    )?;
    if fault == Some("amended_result") {
        return amended_result(g, c, made, release_at);
    }
    if fault == Some("expired_unit") {
        // Produced with an expiry six hours after the release: released in time, shipped
        // after it.
        let r = made.units_request;
        let mut line: Value = serde_json::from_str(&g.reqs[r].line)?;
        line["body"]["body"]["data"]["expires_at"] = json!(utc(release_at + 6 * HOUR)?);
        g.reqs[r].line = line.to_string();
    }
    let leave = release_at + g.range(12, 30) * HOUR;
    let arrive = leave + g.range(20, 60) * HOUR;
    leg(g, c, false, leave, arrive, fault, None, "")?;
    if fault == Some("expired_unit") {
        return Ok(());
    }
    bedside(g, c, fault, arrive)
}

/// The LIMS corrects the viability result the release relied on, two days after the
/// release, out of specification: recorded, and the chain is held with a critical alert.
fn amended_result(g: &mut Gen, c: &Ctx, made: &Made, release_at: i64) -> Result<(), SimulateError> {
    let p = c.p;
    let when = release_at + 2 * DAY;
    let mut body = c.body(
        "result-VIABILITY-amended",
        when,
        FRA,
        "lims-fra",
        ANALYST,
        "batch.test_result_recorded",
        result_data(&made.batch, "VIABILITY", json!(64.5), Some("%")),
    )?;
    body["corrects"] =
        json!({"system": "lims-fra", "source_event_id": format!("{}/result-VIABILITY", p.source)});
    body["reason"] = json!("viable-cell count re-read from the instrument: transcription error");
    let r = c.push(g, when, events_line(body), "on_hold");
    g.reqs[r].fault = Some((
        "amended_result",
        vec![c.idx],
        format!(
            "viability of {} corrected to 64.5 % after the release",
            made.batch
        ),
    ));
    Ok(())
}

/// The bedside: the check, thaw and infusion within the 30-minute window, then follow-up.
fn bedside(
    g: &mut Gen,
    c: &Ctx,
    fault: Option<&'static str>,
    arrive: i64,
) -> Result<(), SimulateError> {
    let (p, idx) = (c.p, c.idx);
    let (nurse, physician) = CENTER_STAFF[p.center];
    let site = &SITES[p.center];
    let emr = format!("emr-{}", site.id[2..5].to_ascii_lowercase());
    let bedside = arrive + g.range(1, 5) * DAY;
    let check = c.step(
        g,
        "bedside",
        bedside,
        p.center,
        &emr,
        nurse,
        "chain.bedside_verified",
        json!({
            "unit_scan": p.units[0], "patient_key": p.key, "wristband_coi": p.coi,
            "site_id": site.id, "verified_by": nurse,
        }),
        "",
    )?;
    c.step(g, "thaw", bedside + 300, p.center, &emr, nurse, "chain.step_performed", json!({
        "step_code": "THAW", "site_id": site.id, "performed_by": nurse, "started_at": utc(bedside + 300)?,
    }), "")?;
    let infuse = c.step(g, "infuse", bedside + 1200, p.center, &emr, physician, "chain.administered", json!({
        "step_code": "INFUSE", "site_id": site.id, "administered_by": physician, "verified_by": nurse, "unit": p.units[0],
    }), "administered")?;
    if fault == Some("out_of_order") {
        // The EMR's interface sends the infusion before the bedside check, then again.
        let send_at = g.reqs[check].send_at - 60;
        g.push_copy(
            infuse,
            send_at,
            (
                "out_of_order",
                vec![idx],
                "administration sent before the bedside check".into(),
            ),
        );
    }
    for (visit, days) in [("D7", 7), ("D28", 28)] {
        let t = bedside + days * DAY;
        let outcome = if g.chance(0.7) { "CR" } else { "PR" };
        c.step(g, &format!("ltfu-{visit}"), t, p.center, "ltfu-net", physician, "chain.follow_up_recorded", json!({
            "site_id": site.id, "recorded_by": physician, "visit_code": visit, "outcome_code": outcome,
        }), "in_follow_up")?;
    }
    Ok(())
}
