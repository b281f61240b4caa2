"""Schemathesis hooks for Autolog's API contract check (fuzz/api-contract).

What a JSON Schema cannot say about Autolog's inputs, said here once:
- the ISBT 128 identifiers carry an ISO/IEC 7064 MOD 37-2 check character: the custom
  formats `isbt128-coi` and `isbt128-unit` draw identifiers whose check character is
  right, and a drawn value of that shape (the coverage phase draws from the pattern)
  gets its check character set right (a wrong one is a refusal the document describes);
- rules across parameters: a consistency proof runs from a smaller tree to a larger one,
  and the reference export names a registry only as CSV;
- references to records that must exist: a token is for a registered source system at
  registered sites, an account is for a registered person (the records of the server
  under test); a new password passes the password rules.
Only values drawn as valid are changed: a value drawn to break the schema stays broken.
"""

import hashlib
import json
import os
import urllib.request

import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"


def mod37_2(data: str) -> str:
    """The ISO/IEC 7064 MOD 37-2 check character of `data` (0-9, A-Z, *)."""
    acc = 0
    for c in data:
        acc = ((acc + ALPHABET.index(c)) * 2) % 37
    return ALPHABET[(38 - acc) % 37]


LETTER = "ABCDEFGHIJKLMNPQRSTUVWXYZ"  # no O
FIN = st.builds(
    lambda a, b, c, d: a + b + c + d,
    st.sampled_from(LETTER + "123456789"),
    st.sampled_from(LETTER + "0123456789"),
    st.sampled_from(LETTER + "0123456789"),
    st.from_regex(r"\A[0-9]{2}\Z"),
)
YEAR = st.from_regex(r"\A[0-9]{2}\Z")
COI_CONTENT = st.builds(
    lambda fin, year, seq: "CH" + fin + year + seq,
    FIN,
    YEAR,
    st.from_regex(r"\A[A-Z0-9]{6}\Z"),
)
COI = COI_CONTENT.map(lambda content: content + mod37_2(content))
UNIT = st.builds(
    lambda content, product, division: content + product + division,
    COI_CONTENT,
    st.from_regex(r"\A[A-Z][0-9]{4}\Z"),
    st.from_regex(r"\A[A-Z0-9]{2}\Z"),
).map(lambda content: content + mod37_2(content))
DIN = st.builds(
    lambda fin, year, seq: fin + year + seq, FIN, YEAR, st.from_regex(r"\A[0-9]{6}\Z")
).map(lambda din: din + mod37_2(din))

schemathesis.openapi.format("isbt128-coi", COI)
schemathesis.openapi.format("isbt128-unit", st.one_of(UNIT, DIN))


def with_check_character(value):
    """A COI (16), a unit identifier (23) or a DIN with its check character (14), with
    the check character made right; any other value as it is."""
    if not isinstance(value, str) or not value.isascii():
        return value
    shaped = (
        (len(value) in (16, 23) and value.startswith("CH"))
        or (len(value) == 14 and value[:13].isalnum() and value[5:13].isdigit())
    )
    content = value[:-1]
    if shaped and all(c in ALPHABET for c in content):
        return content + mod37_2(content)
    return value


def _registered(registry, key):
    """The ids of a registry's records on the server under test (fuzz/api-contract names
    it and the demo account's session in the environment)."""
    base = os.environ.get("AUTOLOG_CONTRACT_BASE")
    cookie = os.environ.get("AUTOLOG_CONTRACT_COOKIE")
    if not base or not cookie:
        return []
    request = urllib.request.Request(
        f"{base}/api/v1/reference/{registry}?limit=1000", headers={"Cookie": cookie}
    )
    with urllib.request.urlopen(request) as answer:
        records = json.loads(answer.read())["records"]
    return [r["state"][key] for r in records if r.get("state", {}).get(key)]


SYSTEMS = _registered("source_systems", "system_id")
SITES = _registered("sites", "site_id")
PERSONS = _registered("personnel", "person_id")


def _pick(choices, drawn):
    """One of `choices`, chosen by the drawn value (so a run stays deterministic)."""
    if not choices:
        return drawn
    digest = hashlib.sha256(repr(drawn).encode()).digest()
    return choices[digest[0] % len(choices)]


def _positive(case, location):
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


def _fix_identifiers(case):
    for location, values in (
        (ParameterLocation.PATH, case.path_parameters),
        (ParameterLocation.QUERY, case.query),
    ):
        if values and _positive(case, location):
            for key, value in list(values.items()):
                values[key] = with_check_character(value)


def _server_values(case):
    """A page token is a value only the server gives: a drawn one is left out."""
    query = case.query
    if query and case.operation.path == "/epcis/events" and _positive(case, ParameterLocation.QUERY):
        query.pop("nextPageToken", None)


def _existing_records(case):
    body = case.body
    if not isinstance(body, dict) or not _positive(case, ParameterLocation.BODY):
        return
    path = case.operation.path
    if path == "/api/v1/tokens" and case.method.upper() == "POST":
        if "system_id" in body:
            body["system_id"] = _pick(SYSTEMS, body["system_id"])
        if isinstance(body.get("sites"), list):
            body["sites"] = [_pick(SITES, s) for s in body["sites"]]
    elif path == "/api/v1/users" and case.method.upper() == "POST":
        if "person_id" in body:
            body["person_id"] = _pick(PERSONS, body["person_id"])
        if "password" in body:
            seed = hashlib.sha256(repr(body["password"]).encode()).hexdigest()[:8]
            body["password"] = f"Lantern {seed} orchid tide"
    elif path.startswith("/api/v1/users/") and "site_id" in body and body["site_id"] != "*":
        body["site_id"] = _pick(SITES, body["site_id"])


@schemathesis.hook
def map_case(ctx, case):
    _fix_identifiers(case)
    _server_values(case)
    _existing_records(case)
    return case


def _whole(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@schemathesis.hook
def filter_case(ctx, case):
    query = case.query or {}
    if not _positive(case, ParameterLocation.QUERY):
        return True
    path = case.operation.path
    if path == "/api/v1/proofs/consistency":
        low, high = _whole(query.get("from")), _whole(query.get("to"))
        return low is None or high is None or low <= high
    if path == "/epcis/events" and "autologCOI" in query:
        # A chain's own events: autologEvents is left out or says chain.
        return query.get("autologEvents", "chain") == "chain"
    if path == "/api/v1/reference/export":
        # One registry per CSV file; the JSON export is one document of every registry.
        return ("registry" in query) == (query.get("format") == "csv")
    return True
