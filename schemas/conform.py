"""Schema-driven type checking of events given as Python values (parsed JSON or records).

:func:`compile_converter` turns a schema (parsed JSON, logical types kept)
into a function that checks a value against it and returns the full Avro
datum: defaults filled in, unknown fields rejected, ``int`` never confused with
``bool`` or ``float``. Errors become :class:`~schemas.errors.SchemaInvalid`
whose message starts with the path of the field, e.g.
``order.lines[0].quantity: expected an integer, got string``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from refledger.schemas.errors import invalid
from refledger.schemas.fingerprint import fullname
from refledger.schemas.timestamps import parse_utc_millis

Converter = Callable[[object], object]

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_NO_DEFAULT = object()


class TimeForm(Enum):
    """How ``timestamp-millis`` fields arrive: JSON text or ``int`` milliseconds."""

    TEXT = "text"
    MILLIS = "millis"


@dataclass(frozen=True)
class ConverterOptions:
    """What the compiled converter accepts and produces."""

    times: TimeForm
    sort_maps: bool = False


class _Mismatch(Exception):
    """A value does not fit the schema; ``path`` grows as the error climbs out of nested values."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem

    def under(self, step: str) -> _Mismatch:
        if not self.path:
            self.path = step
        elif self.path.startswith("["):
            self.path = step + self.path
        else:
            self.path = f"{step}.{self.path}"
        return self


def describe(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array", tuple: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def compile_converter(schema: object, options: ConverterOptions) -> Callable[[object], dict]:
    """A function checking an event against ``schema`` and returning its full datum."""
    named: dict[str, Converter] = {}
    convert_root = _compile(schema, "", named, options)

    def convert(value: object) -> dict:
        try:
            return convert_root(value)
        except _Mismatch as mismatch:
            raise invalid(mismatch.path or "event", mismatch.problem) from None

    return convert


def _compile(node: object, namespace: str, named: dict[str, Converter], options: ConverterOptions) -> Converter:
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return _PRIMITIVES[node]
        name = fullname(node, namespace)
        return lambda value: named[name](value)
    if isinstance(node, list):
        return _union([_compile(branch, namespace, named, options) for branch in node], "null" in node)
    kind = node["type"]
    if not isinstance(kind, str):
        return _compile(kind, namespace, named, options)
    if node.get("logicalType") == "timestamp-millis" and kind == "long":
        return _parse_time if options.times is TimeForm.TEXT else _PRIMITIVES["long"]
    if kind == "record":
        return _record(node, namespace, named, options)
    if kind == "enum":
        converter = _enum(tuple(node["symbols"]))
        named[fullname(node["name"], node.get("namespace", namespace))] = converter
        return converter
    if kind == "array":
        return _array(_compile(node["items"], namespace, named, options))
    if kind == "map":
        return _map(_compile(node["values"], namespace, named, options), options.sort_maps)
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise NotImplementedError(f"schema type {kind!r} is not supported by the converter")


def _integer(low: int, high: int) -> Converter:
    def convert(value: object) -> int:
        if type(value) is not int:
            raise _Mismatch("", f"expected an integer, got {describe(value)}")
        if not low <= value <= high:
            raise _Mismatch("", f"integer out of range [{low}, {high}]: {value}")
        return value

    return convert


def _string(value: object) -> str:
    if type(value) is not str:
        raise _Mismatch("", f"expected a string, got {describe(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Mismatch("", "string is not valid Unicode (lone surrogate)") from None
    return value


def _null(value: object) -> None:
    if value is not None:
        raise _Mismatch("", f"expected null, got {describe(value)}")
    return None


def _boolean(value: object) -> bool:
    if type(value) is not bool:
        raise _Mismatch("", f"expected a boolean, got {describe(value)}")
    return value


_PRIMITIVES: Mapping[str, Converter] = {
    "null": _null,
    "boolean": _boolean,
    "int": _integer(*INT_RANGE),
    "long": _integer(*LONG_RANGE),
    "string": _string,
}


def _parse_time(value: object) -> int:
    if type(value) is not str:
        raise _Mismatch("", f"expected a UTC time string, got {describe(value)}")
    try:
        return parse_utc_millis(value)
    except ValueError as error:
        raise _Mismatch("", str(error)) from None


def _union(branches: list[Converter], nullable: bool) -> Converter:
    others = [branch for branch in branches if branch is not _null]

    def convert(value: object) -> object:
        if value is None and nullable:
            return None
        if len(others) == 1:
            return others[0](value)
        for branch in others:
            try:
                return branch(value)
            except _Mismatch:
                continue
        raise _Mismatch("", f"no branch of the union accepts a {describe(value)}")

    return convert


def _enum(symbols: tuple[str, ...]) -> Converter:
    allowed = frozenset(symbols)

    def convert(value: object) -> str:
        if type(value) is not str or value not in allowed:
            raise _Mismatch("", f"expected one of {', '.join(symbols)}, got {value!r}")
        return value

    return convert


def _array(item: Converter) -> Converter:
    def convert(value: object) -> list:
        if type(value) not in (list, tuple):
            raise _Mismatch("", f"expected an array, got {describe(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except _Mismatch as mismatch:
                raise mismatch.under(f"[{index}]") from None
        return out

    return convert


def _map(values: Converter, sort_keys: bool) -> Converter:
    def convert(value: object) -> dict:
        if type(value) is not dict:
            raise _Mismatch("", f"expected an object, got {describe(value)}")
        out = {}
        for key in value:
            try:
                out[_string(key)] = values(value[key])
            except _Mismatch as mismatch:
                raise mismatch.under(f"[{key!r}]") from None
        return dict(sorted(out.items())) if sort_keys else out

    return convert


def _field_default(field: Mapping) -> object:
    return field["default"] if "default" in field else _NO_DEFAULT


def _fresh(default: object) -> object:
    return default if default is None or isinstance(default, (int, str)) else copy.deepcopy(default)


def _record(node: Mapping, namespace: str, named: dict[str, Converter], options: ConverterOptions) -> Converter:
    name = fullname(node["name"], node.get("namespace", namespace))
    inner = name.rpartition(".")[0]
    fields: list[tuple[str, Converter, object]] = []
    known: frozenset[str] = frozenset(field["name"] for field in node["fields"])

    def convert(value: object) -> dict:
        if type(value) is not dict:
            raise _Mismatch("", f"expected an object, got {describe(value)}")
        unknown = value.keys() - known
        if unknown:
            raise _Mismatch(sorted(map(str, unknown))[0], "unknown field")
        out = {}
        for field_name, field_converter, default in fields:
            # SPEC §4a: null and absent are the same; a field written as null takes its default
            if field_name in value and (value[field_name] is not None or default is _NO_DEFAULT):
                try:
                    out[field_name] = field_converter(value[field_name])
                except _Mismatch as mismatch:
                    raise mismatch.under(field_name) from None
            elif default is not _NO_DEFAULT:
                out[field_name] = _fresh(default)
            else:
                raise _Mismatch(field_name, "required field is missing")
        return out

    named[name] = convert
    for field in node["fields"]:
        fields.append((field["name"], _compile(field["type"], inner, named, options), _field_default(field)))
    return convert


def compile_int_check(schema: object) -> Callable[[object], str | None]:
    """A function giving the path and value of the first Avro ``int`` of a datum outside 32 bits,
    or None when all fit. fastavro reads an ``int`` as any varint; the specification allows 32
    bits, and so do the bounds-checked primitives of `schemas.binary` and the converters here."""
    paths: list[tuple[str, ...]] = []
    named: dict[str, object] = {}

    def walk(node: object, path: tuple[str, ...], namespace: str, depth: int) -> None:
        if depth > 32:
            return
        if isinstance(node, str):
            if node == "int":
                paths.append(path)
            elif node not in _PRIMITIVES:
                walk(named.get(fullname(node, namespace), "null"), path, namespace, depth + 1)
            return
        if isinstance(node, list):
            for branch in node:
                walk(branch, path, namespace, depth + 1)
            return
        kind = node["type"]
        if not isinstance(kind, str) or kind == "int":
            walk(kind, path, namespace, depth + 1)
        elif kind == "record":
            name = fullname(node["name"], node.get("namespace", namespace))
            named[name] = node
            for field in node["fields"]:
                walk(field["type"], path + (field["name"],), name.rpartition(".")[0], depth + 1)
        elif kind == "array":
            walk(node["items"], path + ("[]",), namespace, depth + 1)
        elif kind == "map":
            walk(node["values"], path + ("{}",), namespace, depth + 1)

    walk(schema, (), "", 0)
    low, high = INT_RANGE

    by_field: dict[str, list[tuple[str, ...]]] = {}  # most events have nothing under most fields
    for path in paths:
        by_field.setdefault(path[0], []).append(path)

    def first_out_of_range(datum: object) -> str | None:
        if type(datum) is not dict:
            return None
        for field, field_paths in by_field.items():
            if datum.get(field) is None:
                continue
            for path in field_paths:
                values = [datum]
                for step in path:
                    if step == "[]":
                        values = [item for value in values if type(value) is list for item in value]
                    elif step == "{}":
                        values = [item for value in values if type(value) is dict for item in value.values()]
                    else:
                        values = [value[step] for value in values
                                  if type(value) is dict and value.get(step) is not None]
                for value in values:
                    if type(value) is int and not low <= value <= high:
                        where = ".".join(path).replace(".[]", "[]").replace(".{}", "{}")
                        return f"{where}: an Avro int beyond 32 bits: {value}"
        return None

    return first_out_of_range
