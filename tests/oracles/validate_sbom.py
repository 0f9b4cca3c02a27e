"""Validate CycloneDX and SPDX JSON documents with the projects' own libraries.

usage: validate_sbom.py FILE...   (kind taken from the name: *.cdx.json or *.spdx.json)
Prints "valid <file>" per document; exits 1 if any is invalid.
"""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

failed = False
for path in sys.argv[1:]:
    if path.endswith(".cdx.json"):
        text = open(path, encoding="utf-8").read()
        version = json.loads(text)["specVersion"]
        schema = SchemaVersion.from_version(version)
        error = JsonStrictValidator(schema).validate_str(text)
        problems = [] if error is None else [str(error)[:300]]
    elif path.endswith(".spdx.json"):
        document = parse_file(path)
        problems = [m.validation_message for m in validate_full_spdx_document(document)]
    else:
        print(f"unknown kind: {path}")
        sys.exit(2)
    if problems:
        failed = True
        print(f"INVALID {path}: {problems[:3]}")
    else:
        print(f"valid {path}")
sys.exit(1 if failed else 0)
