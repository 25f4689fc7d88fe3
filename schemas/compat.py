"""BACKWARD compatibility of Avro schemas: can readers on the new schema read old data?

``problems(old, new)`` is a structural check following the Avro resolution rules, slightly
stricter than Avro BACKWARD in one place: removing a field that has no default is refused
too, because integrators still reading with the old schema would break on new data.
``check_resolution(old, new)`` proves it on bytes: a datum exercising every field is written
with the old schema and read back with the new one by fastavro.
"""

import io
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

# Avro's schema-resolution promotions: writer type -> reader types that may read it.
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_PRIMITIVE_NAMES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

Named = dict[str, dict[str, Any]]


def _full(schema: dict[str, Any], namespace: str) -> str:
    name: str = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _collect(schema: Any, namespace: str, named: Named) -> None:
    """Index every named type of ``schema`` by full name, so references can be followed."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _full(schema, namespace)
            named[full] = schema
            for f in schema.get("fields", []):
                _collect(f["type"], full.rpartition(".")[0], named)
        elif kind == "array":
            _collect(schema["items"], namespace, named)
        elif kind == "map":
            _collect(schema["values"], namespace, named)


def _deref(schema: Any, named: Named) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVE_NAMES:
        if schema in named:
            return named[schema]
        # A short name refers to a type of the enclosing namespace; short names are unique
        # enough within one self-contained schema to resolve them without tracking namespaces.
        return next((s for full, s in named.items() if full.rpartition(".")[2] == schema), schema)
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    return kind if isinstance(kind, str) else _kind(kind)


def _base(schema: Any) -> Any:
    """A primitive written as ``{"type": "long"}`` (with or without logicalType) is that primitive."""
    if isinstance(schema, dict) and schema.get("type") in _PRIMITIVE_NAMES:
        return schema["type"]
    return schema


def problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every reason why data written with ``old`` cannot be read with ``new`` (empty if none)."""
    old_named: Named = {}
    new_named: Named = {}
    _collect(old, "", old_named)
    _collect(new, "", new_named)
    return _check(old, new, old_named, new_named, _full(new, ""), set())


def _check(w: Any, r: Any, wn: Named, rn: Named, path: str, seen: set[tuple[str, str]]) -> list[str]:
    w, r = _deref(w, wn), _deref(r, rn)
    wk, rk = _kind(w), _kind(r)
    if rk == "union":
        branches = r
        if wk == "union":
            return [p for wb in w for p in _check_in_union(wb, branches, wn, rn, path, seen)]
        return _check_in_union(w, branches, wn, rn, path, seen)
    if wk == "union":
        # Every branch the writer may have used must be readable by the single reader type.
        return [p for wb in w for p in _check(wb, r, wn, rn, path, seen)]
    if wk != rk:
        if rk in PROMOTIONS.get(wk, frozenset()):
            return []
        return [f"{path}: type changed from {wk} to {rk}"]
    if isinstance(_base(w), str) and isinstance(_base(r), str):
        return _check_logical(w, r, path)
    return _check_complex(w, r, wn, rn, path, seen)


def _check_logical(w: Any, r: Any, path: str) -> list[str]:
    wl = w.get("logicalType") if isinstance(w, dict) else None
    rl = r.get("logicalType") if isinstance(r, dict) else None
    return [] if wl == rl else [f"{path}: logicalType changed from {wl} to {rl}"]


def _check_in_union(w: Any, branches: list[Any], wn: Named, rn: Named, path: str, seen: Any) -> list[str]:
    for branch in branches:
        if not _check(w, branch, wn, rn, path, seen):
            return []
    return [f"{path}: no branch of the new union can read old type {_kind(_deref(w, wn))}"]


def _check_complex(w: Any, r: Any, wn: Named, rn: Named, path: str, seen: set[tuple[str, str]]) -> list[str]:
    kind = _kind(w)
    if kind == "array":
        return _check(w["items"], r["items"], wn, rn, f"{path}[]", seen)
    if kind == "map":
        return _check(w["values"], r["values"], wn, rn, f"{path}{{}}", seen)
    if w["name"].rpartition(".")[2] != r["name"].rpartition(".")[2]:
        return [f"{path}: named type renamed from {w['name']} to {r['name']}"]
    if kind == "enum":
        missing = set(w["symbols"]) - set(r["symbols"])
        if missing and "default" not in r:
            return [f"{path}: enum symbols removed without a default: {sorted(missing)}"]
        return []
    if kind == "fixed":
        return [] if w["size"] == r["size"] else [f"{path}: fixed size changed"]
    key = (w["name"], r["name"])
    if key in seen:  # recursive types: assume compatible on the way back in
        return []
    return _check_fields(w, r, wn, rn, path, seen | {key})


def _check_fields(w: Any, r: Any, wn: Named, rn: Named, path: str, seen: set[tuple[str, str]]) -> list[str]:
    found: list[str] = []
    old_fields = {f["name"]: f for f in w["fields"]}
    new_names = set()
    for field in r["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        new_names.update(names)
        match = next((old_fields[n] for n in names if n in old_fields), None)
        if match is None:
            if "default" not in field:
                found.append(f"{path}.{field['name']}: new field without a default")
        else:
            found += _check(match["type"], field["type"], wn, rn, f"{path}.{field['name']}", seen)
    for name, field in old_fields.items():
        if name not in new_names and "default" not in field:
            found.append(f"{path}.{name}: field removed although it had no default")
    return found


def example_datum(schema: Any, named: Named | None = None, namespace: str = "") -> Any:
    """A value that exercises every field: unions take their non-null branch, arrays and maps
    hold one element, so resolution is tested on real data rather than on nulls."""
    named = {} if named is None else named
    schema = _deref(schema, named)
    if isinstance(schema, list):
        present = [b for b in schema if b != "null"]
        return example_datum(present[0], named, namespace) if present else None
    base = _base(schema)
    if isinstance(base, str):
        return _PRIMITIVE_EXAMPLES[base]
    kind = schema["type"]
    if kind == "array":
        return [example_datum(schema["items"], named, namespace)]
    if kind == "map":
        return {"k": example_datum(schema["values"], named, namespace)}
    full = _full(schema, namespace)
    named[full] = schema
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x00" * schema["size"]
    ns = full.rpartition(".")[0]
    return {f["name"]: example_datum(f["type"], named, ns) for f in schema["fields"]}


_PRIMITIVE_EXAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 1_700_000_000_000_000,
    "float": 1.5,
    "double": 2.5,
    "bytes": b"\x01\x02",
    "string": "text",
}


def check_resolution(old: dict[str, Any], new: dict[str, Any]) -> Any:
    """Write an every-field datum with ``old``, read it with ``new``; returns what was read.

    Raises whatever fastavro raises when the new schema cannot read the old data.
    """
    writer, reader = parse_schema(old), parse_schema(new)
    buf = io.BytesIO()
    schemaless_writer(buf, writer, example_datum(old))
    buf.seek(0)
    return schemaless_reader(buf, writer, reader)
