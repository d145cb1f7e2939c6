"""Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint, per the Avro specification.

Both are computed here rather than taken from a library so that the wire
format does not depend on one library's reading of the spec; the tests check
the results against fastavro and the Apache ``avro`` library.
"""

from __future__ import annotations

import json

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})

# Attributes kept by [STRIP], in the order required by [ORDER].
_KEPT_ATTRIBUTES = ("name", "type", "fields", "symbols", "items", "values", "size")

CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint of ``data`` as defined by the Avro spec."""
    fp = CRC64_EMPTY
    table = _CRC64_TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fullname(name: str, namespace: str | None) -> str:
    """Resolve a (possibly short) Avro name against the enclosing namespace."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def parsing_canonical_form(schema: object) -> str:
    """The Parsing Canonical Form of a schema given as parsed JSON."""
    return _canonical(schema, "", set())


def fingerprint(schema: object) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, 8 bytes little-endian (the single-object header form)."""
    form = parsing_canonical_form(schema).encode("utf-8")
    return crc64_avro(form).to_bytes(8, "little")


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _canonical(node: object, namespace: str, defined: set[str]) -> str:
    if isinstance(node, str):
        return _text(node if node in PRIMITIVES else fullname(node, namespace))
    if isinstance(node, list):
        return "[" + ",".join(_canonical(branch, namespace, defined) for branch in node) + "]"
    if not isinstance(node, dict):
        raise TypeError(f"not an Avro schema: {node!r}")
    kind = node["type"]
    if not isinstance(kind, str):
        return _canonical(kind, namespace, defined)
    if kind in NAMED_KINDS:
        return _canonical_named(node, namespace, defined)
    if kind == "array":
        return '{"type":"array","items":' + _canonical(node["items"], namespace, defined) + "}"
    if kind == "map":
        return '{"type":"map","values":' + _canonical(node["values"], namespace, defined) + "}"
    return _canonical(kind, namespace, defined)


def _canonical_named(node: dict, namespace: str, defined: set[str]) -> str:
    name = fullname(node["name"], node.get("namespace", namespace))
    if name in defined:
        return _text(name)
    defined.add(name)
    inner = name.rpartition(".")[0]
    parts = {"name": _text(name), "type": _text(node["type"])}
    if node["type"] in ("record", "error"):
        fields = (
            '{"name":' + _text(field["name"]) + ',"type":' + _canonical(field["type"], inner, defined) + "}"
            for field in node["fields"]
        )
        parts["fields"] = "[" + ",".join(fields) + "]"
    elif node["type"] == "enum":
        parts["symbols"] = "[" + ",".join(_text(symbol) for symbol in node["symbols"]) + "]"
    else:
        parts["size"] = str(int(node["size"]))
    return "{" + ",".join(f'"{key}":{parts[key]}' for key in _KEPT_ATTRIBUTES if key in parts) + "}"
