#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ (git-ignored), from the
project's tests, examples and docs, and, when present, the shared GS1 EPCIS and HL7 FHIR
example files in ../shared/data (read here, never copied into the repository).

    python3 fuzz/seed-corpora.py            # from anywhere; adds to what is there
    python3 fuzz/seed-corpora.py --clean    # empties corpus/ first

Standard library only. Each seed is named by the SHA-1 of its bytes, as libFuzzer does.
"""

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
SHARED = ROOT.parent / "shared" / "data"
CORPUS = FUZZ / "corpus"

TARGETS = [
    "identifiers", "scan", "time", "events", "enrolment", "reference_import",
    "epcis", "epcis_query", "fhir", "interop_text",
]

seeds = {t: set() for t in TARGETS}


def add(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data and len(data) <= 1024 * 1024:
        seeds[target].add(data)


def read(path):
    try:
        return path.read_bytes()
    except OSError:
        return None


def rust_files(*globs):
    for pattern in globs:
        yield from sorted(ROOT.glob(pattern))


RUST_STRING = re.compile(r'(?<![A-Za-z0-9_#])"((?:[^"\\\n]|\\.){1,200})"')


def unescape(text):
    """A Rust string literal's text: \\n \\r \\t \\0 \\\\ \\" \\' \\xNN \\u{...}."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        simple = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n == "x":
            out.append(chr(int(text[i + 2:i + 4], 16)))
            i += 4
        elif n == "u":
            end = text.index("}", i)
            out.append(chr(int(text[i + 3:end], 16)))
            i = end + 1
        else:
            out.append(n)
            i += 2
    return "".join(out)


def string_literals(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    for m in RUST_STRING.finditer(text):
        try:
            yield unescape(m.group(1))
        except (ValueError, IndexError):
            continue


# --- identifiers, barcode data, times: the literals of the domain's tests ----------------

for path in rust_files("crates/domain/src/identifiers.rs", "crates/domain/src/scan.rs"):
    for s in string_literals(path):
        if len(s) <= 64:
            add("identifiers", s)
            add("scan", s)

for path in rust_files("crates/domain/src/time.rs", "crates/domain/src/zone.rs"):
    for s in string_literals(path):
        if re.search(r"\d{4}-\d\d-\d\d|^[+-]\d\d:\d\d", s):
            add("time", s)

IDENTIFIER = re.compile(
    r"(?:&/)?CH[A-Z0-9]{13}[0-9A-Z*]?(?:[A-Z]\d{4}[A-Z0-9]{2}[0-9A-Z*])?"  # COI, unit id
    r"|=[A-Z0-9]{15}"                                                       # DIN barcode data
    r"|\b[A-Z1-9][A-Z0-9]{2}\d{12}[0-9A-Z*]?\b"                              # DIN
    r"|\b\d{13}\b"                                                          # GLN
)
TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt][0-9:.]+(?:[Zz]|[+-]\d\d:\d\d(?::\d\d)?)?(?:\[[A-Za-z_/+-]+\])?")

text_sources = list(rust_files("crates/*/src/**/*.rs", "crates/*/tests/*.rs"))
text_sources += [ROOT / "examples" / "events.ndjson"]
text_sources += sorted((ROOT / "examples").glob("**/*.*"))
text_sources += sorted((ROOT / "docs").glob("*.md"))
for path in text_sources:
    text = path.read_text(encoding="utf-8", errors="replace")
    for m in IDENTIFIER.finditer(text):
        add("identifiers", m.group(0))
        add("scan", m.group(0))
    for m in TIME.finditer(text):
        add("time", m.group(0))
        add("interop_text", m.group(0))

# --- API request bodies ----------------------------------------------------------------

events_lines = []
ndjson = read(ROOT / "examples" / "events.ndjson")
if ndjson:
    for line in ndjson.splitlines():
        if line.strip():
            events_lines.append(line)
            add("events", line)
    if events_lines:
        add("events", b"[" + b",".join(events_lines) + b"]")


def json_documents():
    """Every JSON document of the examples and the docs' ```json blocks, with its origin."""
    for path in sorted((ROOT / "examples").glob("**/*")):
        if path.suffix in (".json", ".jsonld"):
            yield path.name, read(path)
    for path in sorted((ROOT / "docs").glob("**/*.md")) + [ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8", errors="replace")
        for block in re.findall(r"```json\n(.*?)```", text, re.S):
            yield path.name, block.encode("utf-8")


for name, doc in json_documents():
    if not doc:
        continue
    try:
        value = json.loads(doc)
    except ValueError:
        continue
    if "epcis" in name.lower() or (isinstance(value, dict) and "epcisBody" in value):
        add("epcis", doc)
    elif isinstance(value, dict) and "resourceType" in value:
        add("fhir", doc)
    elif isinstance(value, dict) and "patient_key" in value and "body" not in value:
        add("enrolment", doc)
    elif isinstance(value, dict) and "format" in value:
        add("reference_import", b"export.json\n" + doc)
    else:
        add("events", doc)

# An enrolment as the tests send them, with an upstream COI.
add("enrolment", json.dumps({
    "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
    "actor": "person/P-0001",
    "site": "S-PAR-01",
    "source": {"system": "emr-par", "source_event_id": "ENROL-1"},
    "patient_key": "PK-0001",
    "product_code": "CART-19",
    "treatment_site_id": "S-PAR-01",
    "coi": "CHA999926000001*",
    "upstream_system": "orchestration-eu",
}))

# --- imports -----------------------------------------------------------------------------

for path in sorted((ROOT / "examples" / "reference").glob("*")):
    content = read(path)
    if content is not None:
        add("reference_import", path.name.encode() + b"\n" + content)

epcis_dirs = [SHARED / "epcis" / d for d in ("examples", "invalid")]
for directory in epcis_dirs:
    if directory.is_dir():
        for path in sorted(directory.glob("*.json*")):
            content = read(path)
            if content:
                add("epcis", content)
for path in sorted((SHARED / "epcis" / "hash-vectors").glob("**/*.json*")):
    content = read(path)
    if content and len(content) <= 256 * 1024:
        add("epcis", content)

fhir_dir = SHARED / "fhir"
if fhir_dir.is_dir():
    for path in sorted(fhir_dir.glob("*.json")):
        content = read(path)
        if content:
            add("fhir", content)

# EPC URNs, Digital Links, numbers from every EPCIS document seeded.
for doc in list(seeds["epcis"]):
    text = doc.decode("utf-8", errors="replace")
    for m in re.finditer(r'"((?:urn:epc:|https?://)[^"\s]{1,200})"', text):
        add("interop_text", m.group(1))
    for m in re.finditer(r'"value"\s*:\s*"?([-+0-9.eE]{1,30})"?', text):
        add("interop_text", m.group(1))

# --- EPCIS query parameters: the server tests' query strings ------------------------------

query = re.compile(r"/epcis/events\?([^\"\s]+)")
for path in rust_files("crates/server/tests/*.rs", "crates/app/src/epcis.rs"):
    text = path.read_text(encoding="utf-8", errors="replace")
    for m in query.finditer(text):
        params = m.group(1).split("{")[0]
        add("epcis_query", "\n".join(p for p in params.split("&") if p))
add("epcis_query", "eventType=ObjectEvent\nGE_eventTime=2026-03-01T00:00:00Z\nperPage=10")
add("epcis_query", "EQ_bizStep=shipping|receiving\nMATCH_epc=urn:epc:id:sgtin:0614141.107346.2017")
add("epcis_query", "autologEvents=chain\nautologCOI=CHA999926000001*")

# --- write ---------------------------------------------------------------------------------

if "--clean" in sys.argv[1:] and CORPUS.exists():
    shutil.rmtree(CORPUS)
for target, items in seeds.items():
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    for data in items:
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{target:18} {len(items):4} seeds -> {directory.relative_to(ROOT)}")
