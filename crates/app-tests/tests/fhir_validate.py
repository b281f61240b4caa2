#!/usr/bin/env python3
"""Validates FHIR R5 JSON resources with the independent validator fhir.resources 8.x
(pydantic models of FHIR R5 5.0.0: required elements, types, cardinality, primitive
formats, unknown elements). It does not check codes against value sets nor reference
targets: Autolog's Rust tests check those.

Usage: fhir_validate.py PATH...   (files, or directories of *.json files)

Exit status: 0 every resource is valid; 1 some are not (each is printed with its
errors); 3 the validator is not installed (the Rust tests then skip, unless
AUTOLOG_REQUIRE_FHIR_VALIDATOR=1).
"""

import importlib.metadata
import json
import pathlib
import sys


def main(argv):
    try:
        version = importlib.metadata.version("fhir.resources")
        from fhir.resources import get_fhir_model_class
    except (ImportError, importlib.metadata.PackageNotFoundError):
        print("fhir.resources is not installed: python3 -m pip install 'fhir.resources>=8,<9'", file=sys.stderr)
        return 3
    if not version.startswith("8."):
        print(f"fhir.resources {version} is installed; 8.x (FHIR R5) is needed", file=sys.stderr)
        return 3
    files = []
    for arg in argv:
        path = pathlib.Path(arg)
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    if not files:
        print("no FHIR resources given", file=sys.stderr)
        return 1
    failures = 0
    counts = {}
    for path in files:
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
            resource_type = resource["resourceType"]
            get_fhir_model_class(resource_type).model_validate(resource)
            counts[resource_type] = counts.get(resource_type, 0) + 1
        except Exception as e:  # every failure is reported, whatever its kind
            failures += 1
            print(f"INVALID {path.name}: {e}")
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    print(f"fhir.resources {version}: {len(files) - failures} of {len(files)} valid ({summary})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
