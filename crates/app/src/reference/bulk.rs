//! Bulk reference data: import of CSV and JSON files (atomic: every bad row reported and
//! nothing written, or every row written in one transaction) and lossless export.

use std::collections::{BTreeMap, HashMap};

use autolog_domain::catalogue::lookup;
use autolog_domain::catalogue::stream_state;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::ledger::envelope::check_stream_name;
use autolog_domain::ledger::time::Offset;
use autolog_domain::reference::crosswalk::{Crosswalk, Crosswalks};
use autolog_domain::rules::{crosswalk_of, references, unregistered};
use autolog_domain::{
    Body, CorrectionTarget, EventDraft, FieldError, Instant, OccurredAt, Source, Uuid,
};
use autolog_store::StoreError;
use serde_json::{json, Map, Value};

use crate::ledger::read::text;
use crate::reference::registry::{registry, registry_of_file_name, Cell, Registry, REGISTRIES};
use crate::{AppError, Autolog};

/// The `format` of an export document.
pub const EXPORT_FORMAT: &str = "autolog-reference/v1";
/// The `source.system` of the events an import appends.
pub const IMPORT_SOURCE_SYSTEM: &str = "reference-import";
/// The largest import body the HTTP API accepts (16 MiB); the CLI has no limit.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Separator of the items of a list cell in CSV (`apheresis_center;laboratory`).
pub const LIST_SEPARATOR: char = ';';

/// One input of an import: a file's name (which says its format, and for CSV or a JSON
/// list, its registry) and its bytes. `registry` overrides the name's registry.
#[derive(Debug, Clone)]
pub struct ImportFile {
    pub name: String,
    pub content: Vec<u8>,
    pub registry: Option<String>,
}

/// A row an import refused: where it is, which column, the value and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub file: String,
    /// The line in a CSV file (or of a JSON syntax error).
    pub line: Option<u64>,
    /// The record: `line 4` in CSV, `sites[2]` in JSON.
    pub record: String,
    pub column: String,
    /// The field that is wrong, when it lies deeper than its column (`process` holds
    /// `process.release_tests`); empty when the column says it all.
    pub field: String,
    pub value: String,
    pub rule: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.column.is_empty() {
            write!(
                f,
                "{} {}: {}: {}",
                self.file, self.record, self.value, self.rule
            )
        } else if self.field.is_empty() {
            write!(
                f,
                "{} {}: column {} = {}: {}",
                self.file, self.record, self.column, self.value, self.rule
            )
        } else {
            write!(
                f,
                "{} {}: column {}, field {} = {}: {}",
                self.file, self.record, self.column, self.field, self.value, self.rule
            )
        }
    }
}

/// The reference-data export document (what `import` reads back): its format name and,
/// per registry, every record as it stands, in the import's JSON shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferenceExport {
    pub format: &'static str,
    #[serde(flatten)]
    pub registries: BTreeMap<&'static str, Vec<Value>>,
}

/// What an import did, or would do (`dry_run`), or why it wrote nothing (`bad_rows`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub import_id: String,
    pub dry_run: bool,
    pub rows: usize,
    pub registered: usize,
    pub amended: usize,
    pub mapped: usize,
    pub unchanged: usize,
    pub bad_rows: Vec<BadRow>,
    /// Events appended (0 when refused or dry run).
    pub appended_events: usize,
}

impl ImportReport {
    pub fn written(&self) -> bool {
        self.appended_events > 0
    }
}

/// Where an import is: checking rows (done of total), then writing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportProgress {
    Checking { done: u64, total: u64 },
    Writing { events: u64 },
}

/// One parsed row, before its checks.
struct Row {
    file: String,
    line: Option<u64>,
    record: String,
    registry: &'static Registry,
    data: Value,
}

impl Row {
    fn bad(&self, field: &str, value: impl Into<String>, rule: impl Into<String>) -> BadRow {
        BadRow {
            file: self.file.clone(),
            line: self.line,
            record: self.record.clone(),
            column: self.registry.column_of(field),
            field: if self.registry.column_of(field) == field {
                String::new()
            } else {
                field.to_string()
            },
            value: value.into(),
            rule: rule.into(),
        }
    }

    fn refused(&self, e: &FieldError) -> BadRow {
        self.bad(&e.field, e.value.clone(), e.rule.clone())
    }
}

fn file_bad(file: &str, line: Option<u64>, value: &str, rule: impl Into<String>) -> BadRow {
    BadRow {
        file: file.to_string(),
        line,
        record: line.map_or_else(|| "(file)".to_string(), |l| format!("line {l}")),
        column: String::new(),
        field: String::new(),
        value: value.to_string(),
        rule: rule.into(),
    }
}

/// Parses every file into rows; problems that stop a file from being read are bad rows.
fn parse_files(files: &[ImportFile], bad: &mut Vec<BadRow>) -> Vec<Row> {
    let mut rows = Vec::new();
    for file in files {
        let named = match &file.registry {
            Some(name) => match registry(name) {
                Ok(r) => Some(r),
                Err(e) => {
                    bad.push(file_bad(&file.name, None, name, e.rule));
                    continue;
                }
            },
            None => registry_of_file_name(&file.name),
        };
        let lower = file.name.to_ascii_lowercase();
        if lower.ends_with(".csv") || (named.is_some() && !lower.ends_with(".json")) {
            match named {
                Some(r) => parse_csv(file, r, &mut rows, bad),
                None => bad.push(file_bad(&file.name, None, &file.name, registry_hint())),
            }
        } else {
            parse_json(file, named, &mut rows, bad);
        }
    }
    rows
}

/// The checks of an import that need no ledger: every file read into rows, and each row's
/// payload and stream name checked as `import_reference` checks them before it looks at
/// the ledger. Returns how many rows were read and the bad rows found. Pure (public for
/// the fuzz targets).
#[doc(hidden)]
pub fn check_import_files(files: &[ImportFile]) -> (usize, Vec<BadRow>) {
    let mut bad = Vec::new();
    let rows = parse_files(files, &mut bad);
    for row in &rows {
        let checked = lookup(row.registry.registration, 1).and_then(|t| t.validate(&row.data));
        if let Err(e) = checked {
            bad.push(row.refused(&e));
            continue;
        }
        let stream = row.registry.stream_of(&row.data);
        if let Err(e) = check_stream_name("stream", &stream) {
            bad.push(row.bad(row.registry.columns[0].path, &stream, e.rule));
            continue;
        }
        if row.registry.is_crosswalks() {
            if let Ok(mapping) = crosswalk_of(&row.data) {
                if let Err(e) = Crosswalks::default().add(mapping) {
                    bad.push(row.refused(&e));
                }
            }
        }
    }
    (rows.len(), bad)
}

fn registry_hint() -> String {
    let names: Vec<&str> = REGISTRIES.iter().map(|r| r.name).collect();
    format!(
        "cannot tell the registry: name the file after it (e.g. 01-sites.csv); registries are {}",
        names.join(", ")
    )
}

fn parse_csv(
    file: &ImportFile,
    registry: &'static Registry,
    rows: &mut Vec<Row>,
    bad: &mut Vec<BadRow>,
) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(file.content.as_slice());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            bad.push(BadRow {
                column: "(header)".into(),
                field: String::new(),
                ..file_bad(
                    &file.name,
                    Some(1),
                    "(unreadable)",
                    format!("is not readable CSV: {e}"),
                )
            });
            return;
        }
    };
    let mut columns = Vec::with_capacity(headers.len());
    for (i, name) in headers.iter().enumerate() {
        match registry.columns.iter().find(|c| c.path == name.trim()) {
            Some(c) => columns.push(*c),
            None => {
                let known: Vec<&str> = registry.columns.iter().map(|c| c.path).collect();
                bad.push(BadRow {
                    column: format!("#{} (header)", i + 1),
                    field: String::new(),
                    ..file_bad(
                        &file.name,
                        Some(1),
                        name,
                        format!(
                            "is not a column of {}; columns are {}",
                            registry.name,
                            known.join(", ")
                        ),
                    )
                });
                return;
            }
        }
    }
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line());
                bad.push(BadRow {
                    column: "(record)".into(),
                    field: String::new(),
                    ..file_bad(
                        &file.name,
                        line,
                        "(unreadable)",
                        format!("is not readable CSV: {e}"),
                    )
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line());
        let mut data = Value::Object(Map::new());
        let mut ok = true;
        for (column, cell) in columns.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            let value = match column.cell {
                Cell::Text => Ok(json!(cell)),
                Cell::List => Ok(json!(cell
                    .split(LIST_SEPARATOR)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>())),
                Cell::Number => number(cell),
                Cell::Json => {
                    serde_json::from_str::<Value>(cell).map_err(|e| format!("must be JSON ({e})"))
                }
            };
            match value {
                Ok(v) => set_path(&mut data, column.path, v),
                Err(rule) => {
                    ok = false;
                    bad.push(BadRow {
                        file: file.name.clone(),
                        line,
                        record: line.map_or_else(String::new, |l| format!("line {l}")),
                        column: column.path.to_string(),
                        field: String::new(),
                        value: cell.to_string(),
                        rule,
                    });
                }
            }
        }
        if ok {
            rows.push(Row {
                file: file.name.clone(),
                line,
                record: line.map_or_else(String::new, |l| format!("line {l}")),
                registry,
                data,
            });
        }
    }
}

fn number(cell: &str) -> Result<Value, String> {
    if let Ok(i) = cell.trim().parse::<i64>() {
        return Ok(json!(i));
    }
    cell.trim()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| "must be a number".to_string())
}

fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut node = target;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(map) = node else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn get_path<'a>(source: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(source, |v, part| v.get(part))
}

fn parse_json(
    file: &ImportFile,
    named: Option<&'static Registry>,
    rows: &mut Vec<Row>,
    bad: &mut Vec<BadRow>,
) {
    let value: Value = match autolog_domain::ledger::json::parse_strict(&file.content) {
        Ok(v) => v,
        Err(e) => {
            let line = Some(e.line() as u64);
            // The text around the error, so that the report shows what was found.
            let text = String::from_utf8_lossy(&file.content);
            let found: String = text
                .lines()
                .nth(e.line().saturating_sub(1))
                .unwrap_or_default()
                .chars()
                .skip(e.column().saturating_sub(20))
                .take(40)
                .collect();
            bad.push(BadRow {
                column: format!("column {}", e.column()),
                field: String::new(),
                ..file_bad(
                    &file.name,
                    line,
                    &found,
                    format!("is not well-formed JSON: {e}"),
                )
            });
            return;
        }
    };
    let mut push_list = |registry: &'static Registry, list: &Value, bad: &mut Vec<BadRow>| {
        let Value::Array(items) = list else {
            bad.push(file_bad(
                &file.name,
                None,
                registry.name,
                "must be a list of records",
            ));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            // A null field is an absent one (as an empty CSV cell): an import never removes.
            let mut item = item.clone();
            if let Value::Object(fields) = &mut item {
                fields.retain(|_, v| !v.is_null());
            }
            rows.push(Row {
                file: file.name.clone(),
                line: None,
                record: format!("{}[{i}]", registry.name),
                registry,
                data: item,
            });
        }
    };
    match (&value, named) {
        (Value::Object(doc), _) if doc.contains_key("format") => {
            if doc.get("format") != Some(&json!(EXPORT_FORMAT)) {
                let shown = doc.get("format").map(autolog_domain::error::show).unwrap_or_default();
                bad.push(file_bad(&file.name, None, &shown, format!("format must be {EXPORT_FORMAT}")));
                return;
            }
            for key in doc.keys().filter(|k| *k != "format") {
                if let Err(e) = registry(key) {
                    bad.push(file_bad(&file.name, None, key, format!("is not a registry: {}", e.rule)));
                }
            }
            // Registries in dependency order, whatever the document's key order.
            for registry in REGISTRIES {
                if let Some(list) = doc.get(registry.name) {
                    push_list(registry, list, bad);
                }
            }
        }
        (Value::Array(_), Some(registry)) => push_list(registry, &value, bad),
        (Value::Array(_), None) => bad.push(file_bad(&file.name, None, &file.name, registry_hint())),
        _ => bad.push(file_bad(
            &file.name,
            None,
            "(document)",
            format!("must be an export document ({{\"format\": \"{EXPORT_FORMAT}\", ...}}) or a list of records"),
        )),
    }
}

/// The mappings of one crosswalk stream during an import: stored ones (with their event
/// ids), those this import corrects, those it adds, and the table of all in force.
#[derive(Default)]
struct MappingPlan {
    stored: Vec<(Crosswalk, Uuid)>,
    corrected: Vec<Uuid>,
    added: Vec<Crosswalk>,
    table: Crosswalks,
}

impl MappingPlan {
    /// When `mapping` restates a stored mapping (same code, target and start) with another
    /// end, and fits once that one is set aside: the stored mapping's event id, now corrected.
    fn revalidate(&mut self, mapping: &Crosswalk) -> Option<Uuid> {
        let (_, id) = self.stored.iter().find(|(m, id)| {
            m.local_code == mapping.local_code
                && m.canonical_id == mapping.canonical_id
                && m.valid_from == mapping.valid_from
                && !self.corrected.contains(id)
        })?;
        let id = *id;
        let mut table = Crosswalks::new();
        let kept = self
            .stored
            .iter()
            .filter(|(_, i)| *i != id && !self.corrected.contains(i))
            .map(|(m, _)| m)
            .chain(&self.added);
        for m in kept {
            let _ = table.add(m.clone());
        }
        table.add(mapping.clone()).ok()?;
        self.table = table;
        self.corrected.push(id);
        self.added.push(mapping.clone());
        Some(id)
    }
}

/// When an imported fact took effect: a registration or mapping with a `valid_from` in
/// the past took effect then (so reads as of a valid time before the import see it);
/// anything else takes effect at the import.
fn occurred_for(event_type: &str, data: &Value, import_time: &OccurredAt) -> OccurredAt {
    let registers = lookup(event_type, 1).is_ok()
        && (event_type.ends_with(".registered")
            || event_type == "crosswalk.mapped"
            || event_type == "process_step.defined"
            || event_type == "verification_policy.defined"
            || event_type == "label_template.defined");
    let from = data
        .get("valid_from")
        .and_then(Value::as_str)
        .and_then(|t| Instant::parse_rfc3339("valid_from", t).ok())
        .filter(|from| *from <= import_time.instant);
    match (registers, from) {
        (true, Some(instant)) => OccurredAt {
            instant,
            zone: "UTC".to_string(),
            offset: Offset(0),
        },
        _ => import_time.clone(),
    }
}

/// The registry record of a stream's state: what registration and amendments merged.
/// Lists appended by other events (annotations, the access audit trail of a person or a
/// source system, signing-secret changes) are not part of the record.
fn record_of(state: &Value) -> Value {
    let mut record = state.clone();
    if let Value::Object(o) = &mut record {
        for t in autolog_domain::catalogue::EVENT_TYPES {
            if let autolog_domain::ledger::event_type::Fold::AppendTo(key) = t.fold {
                o.remove(key);
            }
        }
    }
    record
}

impl Autolog {
    /// Imports reference records from files, atomically: every row is checked (schema,
    /// check characters, zones, references, duplicates, crosswalk overlaps) and either
    /// every bad row is reported and nothing is written, or all rows are written in one
    /// transaction. A record already registered with the same values is left unchanged;
    /// one with different values is amended where its registry has an amendment event.
    #[tracing::instrument(skip_all, fields(files = files.len(), actor = %actor, dry_run))]
    pub async fn import_reference(
        &self,
        files: &[ImportFile],
        actor: &str,
        dry_run: bool,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> Result<ImportReport, AppError> {
        autolog_domain::catalogue::parse_draft(
            &json!({"stream": "x", "occurred_at": "2026-01-01T00:00:00+00:00[UTC]", "actor": actor,
                    "source": {"system": "x", "source_event_id": "x"},
                    "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}}}),
            Uuid::nil(),
        )
        .map_err(|e| AppError::Invalid(FieldError::new("actor", actor, e.rule)))?;
        let import_id = self.new_event_id();
        let mut plan = ImportPlan {
            report: ImportReport {
                import_id: import_id.to_string(),
                dry_run,
                ..ImportReport::default()
            },
            ..ImportPlan::default()
        };
        let rows = parse_files(files, &mut plan.bad);
        plan.report.rows = rows.len();
        let occurred_at = OccurredAt {
            instant: self.now(),
            zone: "UTC".to_string(),
            offset: Offset(0),
        };
        let total = rows.len() as u64;
        for n in 0..rows.len() {
            if n % 100 == 0 {
                progress(ImportProgress::Checking {
                    done: n as u64,
                    total,
                });
            }
            self.plan_row(&mut plan, &rows, n, actor, &occurred_at, import_id)
                .await?;
        }
        progress(ImportProgress::Checking { done: total, total });
        let mut report = plan.report;
        report.bad_rows = plan.bad;
        if !report.bad_rows.is_empty() || dry_run || plan.drafts.is_empty() {
            return Ok(report);
        }
        progress(ImportProgress::Writing {
            events: plan.drafts.len() as u64,
        });
        self.write_import(report, &plan.drafts, &plan.draft_rows, &rows)
            .await
    }

    /// Checks one row and, when it changes anything, plans its event: a registration, an
    /// amendment of what differs, or a crosswalk mapping (a correction where only its end
    /// changes). A bad row is reported and planned nothing.
    async fn plan_row(
        &self,
        plan: &mut ImportPlan,
        rows: &[Row],
        n: usize,
        actor: &str,
        occurred_at: &OccurredAt,
        import_id: Uuid,
    ) -> Result<(), AppError> {
        let row = &rows[n];
        let registration = row.registry.registration;
        if !row.registry.is_crosswalks() && plan.seen_before(rows, n) {
            return Ok(());
        }
        let checked = lookup(registration, 1).and_then(|t| t.validate(&row.data));
        if let Err(e) = checked {
            plan.bad.push(row.refused(&e));
            return Ok(());
        }
        let stream = row.registry.stream_of(&row.data);
        if let Err(e) = check_stream_name("stream", &stream) {
            plan.bad
                .push(row.bad(row.registry.columns[0].path, &stream, e.rule));
            return Ok(());
        }
        let change = if row.registry.is_crosswalks() {
            self.crosswalk_change(plan, row, &stream).await?
        } else {
            self.record_change(plan, row, n, &stream).await?
        };
        let Some((event_type, data, corrects)) = change else {
            return Ok(());
        };
        let draft = EventDraft {
            event_id: self.new_event_id(),
            stream: stream.clone(),
            occurred_at: occurred_for(event_type, &data, occurred_at),
            actor: actor.to_string(),
            site: None,
            source: Source {
                system: IMPORT_SOURCE_SYSTEM.to_string(),
                source_event_id: format!("{import_id}/{}", plan.drafts.len() + 1),
            },
            reason: Some(format!(
                "reference import {import_id}: {} {}",
                row.file, row.record
            )),
            corrects,
            body: Body::new(event_type, 1, data),
        };
        if self.refuse_unknown_references(plan, row, &draft).await? {
            return Ok(());
        }
        plan.created.entry(stream).or_insert(n);
        plan.drafts.push(draft);
        plan.draft_rows.push(n);
        Ok(())
    }

    /// A crosswalk row: unchanged, a new mapping, or the same mapping with another end
    /// (restated as a correction). `None` when nothing is to be written.
    async fn crosswalk_change(
        &self,
        plan: &mut ImportPlan,
        row: &Row,
        stream: &str,
    ) -> Result<Option<PlannedEvent>, AppError> {
        let Ok(mapping) = crosswalk_of(&row.data) else {
            return Ok(None);
        };
        if !plan.tables.contains_key(stream) {
            let events = self.store.stream_events(stream, Instant::MAX).await?;
            let mut table = MappingPlan::default();
            for event in effective_events(&events, Instant::MAX, Instant::MAX) {
                if let Ok(m) = crosswalk_of(&event.body.data) {
                    table.stored.push((m.clone(), event.event_id));
                    let _ = table.table.add(m);
                }
            }
            plan.tables.insert(stream.to_string(), table);
        }
        let Some(table) = plan.tables.get_mut(stream) else {
            return Ok(None);
        };
        if table.stored.iter().any(|(m, _)| *m == mapping) {
            plan.report.unchanged += 1;
            return Ok(None);
        }
        let mut corrects = None;
        match table.table.add(mapping.clone()) {
            Ok(_) => {
                table.added.push(mapping);
                plan.report.mapped += 1;
            }
            Err(e) => match table.revalidate(&mapping) {
                // The same mapping with another end (or none): restate it as a correction.
                Some(id) => {
                    corrects = Some(CorrectionTarget::EventId(id));
                    plan.report.amended += 1;
                }
                None => {
                    plan.bad.push(row.refused(&e));
                    return Ok(None);
                }
            },
        }
        Ok(Some((
            row.registry.registration,
            row.data.clone(),
            corrects,
        )))
    }

    /// A registry row: a registration when the record is new, else an amendment of what
    /// differs (refused where the registry has no amendment event). `None` when unchanged
    /// or refused.
    async fn record_change(
        &self,
        plan: &mut ImportPlan,
        row: &Row,
        n: usize,
        stream: &str,
    ) -> Result<Option<PlannedEvent>, AppError> {
        let events = match self.store.stream_head(stream).await? {
            Some(_) => self.store.stream_events(stream, Instant::MAX).await?,
            None => Vec::new(),
        };
        let state = record_of(&stream_state(stream, &events, Instant::MAX, Instant::MAX).state);
        plan.created.insert(stream.to_string(), n);
        if events.is_empty() {
            plan.report.registered += 1;
            return Ok(Some((row.registry.registration, row.data.clone(), None)));
        }
        let diff = changed_fields(&row.data, &state);
        if diff.is_empty() {
            plan.report.unchanged += 1;
            return Ok(None);
        }
        let first = diff.keys().next().cloned().unwrap_or_default();
        let registered = state
            .get(&first)
            .map_or_else(|| "(absent)".to_string(), autolog_domain::error::show);
        let Some(amendment) = row.registry.amendment else {
            plan.bad.push(row.bad(
                &first,
                diff.get(&first).map(autolog_domain::error::show).unwrap_or_default(),
                format!("differs from the registered record ({registered}); records of {} change only by a correction event", row.registry.name),
            ));
            return Ok(None);
        };
        let data = Value::Object(diff);
        if let Err(e) = lookup(amendment, 1).and_then(|t| t.validate(&data)) {
            let mut b = row.refused(&e);
            b.rule = format!(
                "differs from the registered record, and {amendment} cannot make that change: {}",
                e.rule
            );
            plan.bad.push(b);
            return Ok(None);
        }
        plan.report.amended += 1;
        Ok(Some((amendment, data, None)))
    }

    /// Reports the row when its event names a record that is neither stored nor registered
    /// by any row of this import (a bad row counts: it is reported itself, not again through
    /// every row that needs it). True when refused.
    async fn refuse_unknown_references(
        &self,
        plan: &mut ImportPlan,
        row: &Row,
        draft: &EventDraft,
    ) -> Result<bool, AppError> {
        let mut refused = false;
        for (field, referenced) in references(draft) {
            let known = match plan.existing.get(&referenced) {
                Some(&known) => known,
                None => {
                    let stored = self.store.stream_head(&referenced).await?.is_some();
                    plan.existing.insert(referenced.clone(), stored);
                    stored
                }
            };
            if !known
                && !plan.created.contains_key(&referenced)
                && !plan.seen.contains_key(&referenced)
            {
                let e = unregistered(field.trim_start_matches("body.data."), &referenced);
                plan.bad.push(row.refused(&e));
                refused = true;
            }
        }
        Ok(refused)
    }

    /// Writes the planned events in one transaction. The store's own checks (the backstop)
    /// name the batch member: a refusal is mapped back to its row and nothing is written.
    async fn write_import(
        &self,
        mut report: ImportReport,
        drafts: &[EventDraft],
        draft_rows: &[usize],
        rows: &[Row],
    ) -> Result<ImportReport, AppError> {
        match self.store.append(drafts, &self.store_clock()).await {
            Ok(outcomes) => {
                self.note_appended();
                report.appended_events = outcomes.iter().filter(|o| !o.duplicate).count();
                tracing::info!(import_id = %report.import_id, events = report.appended_events, "reference import written");
                Ok(report)
            }
            Err(StoreError::Rejected(e)) => {
                let index = e
                    .field
                    .strip_prefix('[')
                    .and_then(|r| r.split(']').next())
                    .and_then(|i| i.parse::<usize>().ok());
                let row = index.and_then(|i| draft_rows.get(i)).map(|&n| &rows[n]);
                let Some(row) = row else {
                    return Err(AppError::Invalid(e));
                };
                let field = e.field.split_once("].").map_or("", |(_, f)| f);
                let field = field.trim_start_matches("body.data.");
                report
                    .bad_rows
                    .push(row.bad(field, e.value.clone(), e.rule.clone()));
                report.registered = 0;
                report.amended = 0;
                report.mapped = 0;
                Ok(report)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every registry's records (and every crosswalk mapping) as known at `known_at`
    /// (default now), each record as it stands after all its events: one document.
    pub async fn export_reference(
        &self,
        known_at: Option<&str>,
    ) -> Result<ReferenceExport, AppError> {
        let known_at = self.settled_known_at(known_at, self.now()).await?;
        let mut registries = BTreeMap::new();
        for registry in REGISTRIES {
            let records = self.export_records(registry, known_at).await?;
            registries.insert(registry.name, records);
        }
        Ok(ReferenceExport {
            format: EXPORT_FORMAT,
            registries,
        })
    }

    /// One registry as CSV (header row, then one row per record).
    pub async fn export_reference_csv(
        &self,
        registry_name: &str,
        known_at: Option<&str>,
    ) -> Result<String, AppError> {
        let registry = registry(registry_name)?;
        let known_at = self.settled_known_at(known_at, self.now()).await?;
        let records = self.export_records(registry, known_at).await?;
        let mut writer = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> = registry.columns.iter().map(|c| c.path).collect();
        let csv_error = |e: csv::Error| AppError::Storage(format!("writing CSV: {e}"));
        writer.write_record(&header).map_err(csv_error)?;
        for record in &records {
            let mut cells = Vec::with_capacity(header.len());
            for column in registry.columns {
                let cell = match (get_path(record, column.path), column.cell) {
                    (None | Some(Value::Null), _) => String::new(),
                    (Some(Value::String(s)), Cell::Text) => s.clone(),
                    (Some(Value::Array(items)), Cell::List) => {
                        let mut texts = Vec::with_capacity(items.len());
                        for item in items {
                            let text = item.as_str().unwrap_or_default();
                            if text.contains(LIST_SEPARATOR)
                                || text.trim() != text
                                || text.is_empty()
                            {
                                return Err(AppError::Invalid(FieldError::new(
                                    column.path,
                                    text,
                                    format!("cannot be written to CSV losslessly (a list item with '{LIST_SEPARATOR}' or outer spaces); export as JSON"),
                                )));
                            }
                            texts.push(text);
                        }
                        texts.join(&LIST_SEPARATOR.to_string())
                    }
                    (Some(v), _) => v.to_string(),
                };
                cells.push(cell);
            }
            writer.write_record(&cells).map_err(csv_error)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| AppError::Storage(format!("writing CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| AppError::Storage(format!("writing CSV: {e}")))
    }

    pub(crate) async fn export_records(
        &self,
        registry: &Registry,
        known_at: Instant,
    ) -> Result<Vec<Value>, AppError> {
        let mut records = Vec::new();
        for stream in &self.all_streams_with_prefix(registry.prefix).await? {
            let events = self.store.stream_events(stream, known_at).await?;
            if registry.is_crosswalks() {
                let mut mappings: Vec<&Value> = effective_events(&events, Instant::MAX, known_at)
                    .into_iter()
                    .map(|e| &e.body.data)
                    .collect();
                mappings.sort_by_key(|v| (text(v, "local_code"), text(v, "valid_from")));
                records.extend(mappings.into_iter().cloned());
            } else {
                let state = stream_state(stream, &events, Instant::MAX, known_at);
                if !state.events.is_empty() {
                    records.push(record_of(&state.state));
                }
            }
        }
        Ok(records)
    }
}

/// The event a row plans: its type, payload and what it corrects (if anything).
type PlannedEvent = (&'static str, Value, Option<CorrectionTarget>);

/// What an import has checked and planned so far.
#[derive(Default)]
struct ImportPlan {
    report: ImportReport,
    bad: Vec<BadRow>,
    drafts: Vec<EventDraft>,
    /// The row of each planned draft.
    draft_rows: Vec<usize>,
    /// Streams known to exist in the store (looked up once).
    existing: HashMap<String, bool>,
    /// Streams registered or amended by a row of this import.
    created: HashMap<String, usize>,
    /// The row that first named each record.
    seen: HashMap<String, usize>,
    /// The crosswalk tables as stored and as planned, by stream.
    tables: HashMap<String, MappingPlan>,
}

impl ImportPlan {
    /// Whether row `n` names a record an earlier row of this import named (reported).
    fn seen_before(&mut self, rows: &[Row], n: usize) -> bool {
        let row = &rows[n];
        let stream = row.registry.stream_of(&row.data);
        let named = check_stream_name("stream", &stream).is_ok();
        if let Some(&first) = self.seen.get(&stream).filter(|_| named) {
            let earlier: &Row = &rows[first];
            self.bad.push(row.bad(
                row.registry.columns[0].path,
                stream.split('/').skip(1).collect::<Vec<_>>().join("/"),
                format!(
                    "appears twice in this import (also {} {}); a record appears once",
                    earlier.file, earlier.record
                ),
            ));
            return true;
        }
        if named {
            self.seen.insert(stream, n);
        }
        false
    }
}

/// The fields of `row` that differ from the registered record, as a merge patch: an object
/// (a postal address) is replaced whole, so the patch clears what the new one leaves out.
fn changed_fields(row: &Value, state: &Value) -> Map<String, Value> {
    let mut diff = Map::new();
    if let Value::Object(fields) = row {
        for (k, v) in fields {
            let old = state.get(k);
            if old == Some(v) {
                continue;
            }
            let mut patch = v.clone();
            if let (Some(Value::Object(old)), Value::Object(new)) = (old, &mut patch) {
                for gone in old.keys().filter(|key| v.get(*key).is_none()) {
                    new.insert(gone.clone(), Value::Null);
                }
            }
            diff.insert(k.clone(), patch);
        }
    }
    diff
}
