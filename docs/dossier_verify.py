#!/usr/bin/env python3
"""Verify an Autolog inspection dossier without Autolog (docs/dossier.md).

    python3 dossier_verify.py DOSSIER.json PUBLIC_KEY

PUBLIC_KEY is 64 hex characters, or a file holding them or the JSON of GET /api/v1/key.
Needs Python 3.9+ and the `cryptography` package (Ed25519). Exit 0: verified; 1: not,
naming the first thing that is wrong. Written apart from Autolog's Rust code, from the
rules in docs/hashing.md, so an inspector need not trust that code.
"""
import decimal, hashlib, json, os, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def es_number(x):  # RFC 8785 numbers: ECMAScript's Number.prototype.toString
    if isinstance(x, bool) or x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"not a JSON number: {x!r}")
    if isinstance(x, int):
        return str(x)
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    r = repr(x)
    if "e" not in r:
        return r
    mantissa, exp = r.split("e")
    if -7 < int(exp) < 21:
        return format(decimal.Decimal(r), "f")
    return f"{mantissa}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"

def jcs(v):  # RFC 8785 JSON Canonicalization Scheme
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, (int, float)):
        return es_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(v[k]) for k in keys) + "}"

def sha256(data):
    return hashlib.sha256(data).digest()

def verify_inclusion(leaf, index, size, path, root):  # RFC 9162 section 2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root

def read_key(arg):
    text = open(arg).read().strip() if os.path.exists(arg) else arg.strip()
    if text.startswith("{"):
        text = json.loads(text)["public_key"]
    return bytes.fromhex(text)

def check_checkpoint(cp, key):
    if cp.get("key_id") != hashlib.sha256(key).hexdigest()[:16]:
        return f"checkpoint: signed by key {cp.get('key_id')}, not by the key given"
    if "sequence" in cp:
        lines = ["autolog-checkpoint/v2", str(cp["sequence"]), str(cp["tree_size"]), cp["root"], cp["issued_at"], cp["previous"]]
    else:
        lines = ["autolog-checkpoint/v1", str(cp["tree_size"]), cp["root"], cp["issued_at"]]
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(bytes.fromhex(cp["signature"]), "".join(l + "\n" for l in lines).encode())
    except Exception:
        return f"checkpoint: at tree size {cp['tree_size']}: the Ed25519 signature does not verify"
    return None

def verify(dossier, key):
    if dossier.get("format") != "autolog-dossier/1":
        return "format: this is not an autolog-dossier/1 document"
    cp = dossier["checkpoint"]
    problem = check_checkpoint(cp, key)
    if problem:
        return problem
    root, size, last = bytes.fromhex(cp["root"]), cp["tree_size"], {}
    for i, entry in enumerate(dossier["events"]):
        event = dict(entry["event"])
        given = event.pop("hash", None)
        for added_by_reads in ("superseded_by", "occurred_at_display"):
            event.pop(added_by_reads, None)
        digest = sha256(jcs(event).encode())
        if digest.hex() != given:
            return f"events[{i}]: hash {given} is not the SHA-256 of its canonical JSON ({digest.hex()}): the event was altered"
        stream, seq = event["stream"], event["seq"]
        want_seq, want_prev = (last[stream][0] + 1, last[stream][1]) if stream in last else (1, "0" * 64)
        if seq != want_seq:
            return f"events[{i}]: stream {stream}: seq {seq} where {want_seq} was due (an event is missing or out of order)"
        if event["prev_hash"] != want_prev:
            return f"events[{i}]: stream {stream} seq {seq}: prev_hash {event['prev_hash']} is not the previous event's hash {want_prev}"
        last[stream] = (seq, given)
        path = [bytes.fromhex(h) for h in entry["inclusion_path"]]
        if not verify_inclusion(sha256(b"\x00" + digest), event["position"] - 1, size, path, root):
            return f"events[{i}]: inclusion proof against the checkpoint (size {size}) does not lead to its root"
    return None

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        problem = verify(json.load(open(sys.argv[1])), read_key(sys.argv[2]))
    except (KeyError, TypeError, ValueError) as e:
        problem = f"malformed dossier: {e!r}"
    if problem:
        print(f"NOT verified: {problem}")
        sys.exit(1)
    print("verified")
