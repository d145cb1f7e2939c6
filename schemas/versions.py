"""The schema versions on disk: one directory ``v<N>`` per version, newest is current.

Each directory holds one ``.avsc`` file per named type, named
``<namespace>.<Name>.avsc`` (the layout fastavro's ``load_schema`` resolves);
the envelope is ``refledger.events.Event.avsc``. Loading inlines every named
type at its first use, which gives one self-contained schema that any Avro
library can parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from refledger.schemas.fingerprint import NAMED_KINDS, PRIMITIVES, fingerprint, fullname, parsing_canonical_form

SCHEMA_ROOT = Path(__file__).resolve().parent
ENVELOPE_NAME = "refledger.events.Event"


@dataclass(frozen=True)
class SchemaVersion:
    """One schema version: its directory, full schema text, canonical form and fingerprint."""

    name: str
    number: int
    directory: Path
    schema_json: str
    canonical_form: str
    fingerprint: bytes

    def schema(self) -> dict:
        """A fresh copy of the self-contained schema (parsed JSON, docs and logical types kept)."""
        return json.loads(self.schema_json)


def load_inlined(directory: Path, root: str = ENVELOPE_NAME) -> dict:
    """The schema named ``root`` with every named type it uses inlined from ``directory``."""
    defined: set[str] = set()

    def load(name: str) -> dict:
        path = directory / f"{name}.avsc"
        if not path.is_file():
            raise FileNotFoundError(f"{directory.name}: no schema file for named type {name}")
        return expand(json.loads(path.read_text(encoding="utf-8")), name.rpartition(".")[0])

    def expand(node: object, namespace: str) -> object:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            name = fullname(node, namespace)
            return name if name in defined else load(name)
        if isinstance(node, list):
            return [expand(branch, namespace) for branch in node]
        kind = node["type"]
        if not isinstance(kind, str) or kind not in PRIMITIVES | NAMED_KINDS | {"array", "map"}:
            return {**node, "type": expand(kind, namespace)}
        if kind in NAMED_KINDS:
            name = fullname(node["name"], node.get("namespace", namespace))
            defined.add(name)
            inner = name.rpartition(".")[0]
            if kind in ("record", "error"):
                fields = [{**field, "type": expand(field["type"], inner)} for field in node["fields"]]
                return {**node, "fields": fields}
            return dict(node)
        if kind == "array":
            return {**node, "items": expand(node["items"], namespace)}
        if kind == "map":
            return {**node, "values": expand(node["values"], namespace)}
        return dict(node)

    return load(root)


def strip_logical_types(node: object) -> object:
    """The same schema with logical type annotations removed (times read as plain ``long``)."""
    if isinstance(node, list):
        return [strip_logical_types(branch) for branch in node]
    if not isinstance(node, dict):
        return node
    if "logicalType" in node and node["type"] in PRIMITIVES:
        return node["type"]
    stripped = {key: value for key, value in node.items() if key != "logicalType"}
    for key in ("type", "items", "values"):
        if key in stripped and not isinstance(stripped[key], str):
            stripped[key] = strip_logical_types(stripped[key])
    if "fields" in stripped:
        stripped["fields"] = [{**field, "type": strip_logical_types(field["type"])} for field in stripped["fields"]]
    return stripped


def _version_number(directory: Path) -> int | None:
    name = directory.name
    if directory.is_dir() and name.startswith("v") and name[1:].isdigit():
        return int(name[1:])
    return None


def load_version(directory: Path) -> SchemaVersion:
    """Load one version directory."""
    schema = load_inlined(directory)
    return SchemaVersion(
        name=directory.name,
        number=_version_number(directory) or 0,
        directory=directory,
        schema_json=json.dumps(schema, ensure_ascii=False),
        canonical_form=parsing_canonical_form(schema),
        fingerprint=fingerprint(schema),
    )


def load_versions(root: Path = SCHEMA_ROOT) -> tuple[SchemaVersion, ...]:
    """Every version under ``root``, oldest first."""
    numbered = sorted((number, path) for path in root.iterdir() if (number := _version_number(path)) is not None)
    if not numbered:
        raise FileNotFoundError(f"no schema version directories (v1, v2, ...) under {root}")
    return tuple(load_version(path) for _, path in numbered)
