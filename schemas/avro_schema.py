"""Derives Avro schemas from the record dataclasses and keeps the committed .avsc files in step.

``python -m schemas.avro_schema --write`` regenerates ``schemas/avsc/<domain>/<Name>.avsc`` (the
current schema) and publishes it as ``schemas/avsc/<domain>/<Name>/<fingerprint>.avsc`` when its
fingerprint is new. Those published versions are never rewritten or deleted: records written
with any of them stay in the log forever (ADR 22). ``--check`` exits 1 and lists every stale,
missing, orphaned or unpublished file.
"""

import argparse
import dataclasses
import datetime
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

AVSC_DIR = Path(__file__).parent / "avsc"

_PRIMITIVES: dict[Any, str] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
}
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}


def namespace(cls: type) -> str:
    """Avro namespace of a record class, declared as ``AVRO_NAMESPACE`` in its module."""
    value = getattr(sys.modules[cls.__module__], "AVRO_NAMESPACE", None)
    if not isinstance(value, str):
        raise TypeError(f"module {cls.__module__} declares no AVRO_NAMESPACE")
    return value


def full_name(cls: type) -> str:
    """Avro full name, e.g. ``voice.calls.v1.CallReceived``."""
    return f"{namespace(cls)}.{cls.__name__}"


def avsc_path(cls: type, root: Path = AVSC_DIR) -> Path:
    """Where the committed schema of ``cls`` lives: ``<root>/<domain>/<Name>.avsc``."""
    return root / namespace(cls).split(".")[1] / f"{cls.__name__}.avsc"


def versions_dir(cls: type, root: Path = AVSC_DIR) -> Path:
    """Where every published version of ``cls`` is kept: ``<root>/<domain>/<Name>/``."""
    return avsc_path(cls, root).with_suffix("")


def version_path(cls: type, fp: bytes, root: Path = AVSC_DIR) -> Path:
    """The published version of ``cls`` with fingerprint ``fp`` (hex as in the record header)."""
    return versions_dir(cls, root) / f"{fp.hex()}.avsc"


def published_versions(
    cls: type, root: Path = AVSC_DIR, *, older_only: bool = False
) -> dict[bytes, dict[str, Any]]:
    """Every published schema of ``cls`` (the current one among them), by fingerprint.

    ``older_only`` leaves out the current schema's file without reading it (by its name, which
    ``--check`` keeps honest), for readers that have the current schema already.
    """
    versions = {}
    for path in sorted(versions_dir(cls, root).glob("*.avsc")):
        if older_only and path.stem == fingerprint(cls).hex():
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        versions[crc64_fingerprint(schema)] = schema
    return versions


def avro_schema(cls: type) -> dict[str, Any]:
    """A fresh, self-contained Avro schema for ``cls``: nested records are written in full."""
    return json.loads(schema_json(cls))  # type: ignore[no-any-return]


# Plain dicts rather than functools.cache: mypy cannot see that classes are hashable.
_SCHEMA_JSON: dict[type, str] = {}
_FINGERPRINT: dict[type, bytes] = {}


def schema_json(cls: type) -> str:
    """The exact text of the committed ``.avsc`` for ``cls``."""
    if cls not in _SCHEMA_JSON:
        _SCHEMA_JSON[cls] = json.dumps(_record(cls, set()), indent=2, ensure_ascii=False) + "\n"
    return _SCHEMA_JSON[cls]


def fingerprint(cls: type) -> bytes:
    """CRC-64-AVRO fingerprint (little-endian, as the Avro spec's single-object header wants).

    Taken over the fully expanded schema, so it equals what the ``avro`` package and the Java
    library compute from the published ``.avsc`` file.
    """
    if cls not in _FINGERPRINT:
        _FINGERPRINT[cls] = crc64_fingerprint(avro_schema(cls))
    return _FINGERPRINT[cls]


def crc64_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO fingerprint of a self-contained schema (JSON-like value), little-endian."""
    canonical = to_parsing_canonical_form(parse_schema(schema))
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


def record_doc(cls: type) -> str:
    """The record doc of ``cls``: its docstring on one line."""
    text = (cls.__doc__ or "").strip()
    # dataclass() invents a docstring from the signature when the class has none.
    if not text or text.startswith(f"{cls.__name__}("):
        raise TypeError(f"{cls.__qualname__} needs a docstring: it becomes the record doc")
    return " ".join(text.split())


def _record(cls: type, seen: set[str]) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    seen.add(full_name(cls))
    hints = typing.get_type_hints(cls)
    return {
        "type": "record",
        "name": cls.__name__,
        "namespace": namespace(cls),
        "doc": record_doc(cls),
        "fields": [_field(f, hints[f.name], seen) for f in dataclasses.fields(cls)],
    }


def _field(f: dataclasses.Field[Any], hint: Any, seen: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": _type(hint, seen)}
    if f.metadata.get("doc"):
        out["doc"] = f.metadata["doc"]
    if f.default is not dataclasses.MISSING:
        out["default"] = _json_default(f.default)
    elif f.default_factory is not dataclasses.MISSING:
        out["default"] = _json_default(f.default_factory())
    if isinstance(out["type"], list) and out.get("default", 0) is not None:
        # Avro takes a union's default from its first branch, which we always make "null".
        raise TypeError(f"optional field {f.name!r} must default to None")
    return out


def _json_default(value: object) -> object:
    if isinstance(value, tuple):
        return [_json_default(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool | dict):
        return value
    raise TypeError(f"unsupported default {value!r}")


def unwrap_newtype(hint: Any) -> Any:
    """The plain type behind a ``NewType`` (possibly nested)."""
    while hasattr(hint, "__supertype__"):
        hint = hint.__supertype__
    return hint


def _type(hint: Any, seen: set[str]) -> Any:
    hint = unwrap_newtype(hint)
    if hint in _PRIMITIVES:
        return _PRIMITIVES[hint]
    if hint is datetime.datetime:
        return dict(_TIMESTAMP)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1 or len(args) != 2:
            raise TypeError(f"only `X | None` unions are supported, not {hint}")
        return ["null", _type(present[0], seen)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type(args[0], seen)}
    if origin is dict and args and unwrap_newtype(args[0]) is str:
        return {"type": "map", "values": _type(args[1], seen)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = full_name(hint)
        # A named type may be defined only once per schema; later uses refer to it by name.
        return name if name in seen else _record(hint, seen)
    raise TypeError(f"no Avro mapping for {hint!r}")


def stale_files(records: Sequence[type], root: Path = AVSC_DIR) -> list[str]:
    """Problems with the committed files: missing, out of date, unpublished, misnamed, or with no
    record class."""
    problems = []
    expected = {avsc_path(cls, root): schema_json(cls) for cls in records}
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {path}")
    for path in sorted(root.glob("*/*.avsc")):
        if path not in expected:
            problems.append(f"orphan (no record class; delete it deliberately): {path}")
    for cls in records:
        if not (published := version_path(cls, fingerprint(cls), root)).exists():
            problems.append(f"unpublished (the current schema is not a published version yet): {published}")
    problems += [p for path in sorted(root.glob("*/*/*.avsc")) for p in _version_problems(path)]
    return problems


def _version_problems(path: Path) -> list[str]:
    """A published version must be the schema its directory and file name say it is."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        fp = crc64_fingerprint(schema).hex()
    except Exception as exc:  # whatever is wrong with the file, say which file
        return [f"unreadable published version {path}: {exc}"]
    problems = []
    if path.stem != fp:
        problems.append(f"misnamed published version {path}: its fingerprint is {fp}")
    domain = str(schema.get("namespace", "")).partition(".")[2].partition(".")[0]
    if (domain, schema.get("name")) != (path.parent.parent.name, path.parent.name):
        problems.append(f"misplaced published version {path}: it is {schema.get('name')!r}")
    return problems


def write_all(records: Sequence[type], root: Path = AVSC_DIR) -> list[Path]:
    """Write every out-of-date ``.avsc`` file and publish every new version; returns the files
    written. A published version is never rewritten (a doc-only change keeps its fingerprint)."""
    written = []
    for cls in records:
        text = schema_json(cls)
        current, published = avsc_path(cls, root), version_path(cls, fingerprint(cls), root)
        if not current.exists() or current.read_text(encoding="utf-8") != text:
            written.append(_write(current, text))
        if not published.exists():
            written.append(_write(published, text))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``--write`` or ``--check``."""
    from schemas.registry import ALL_RECORDS  # the registry imports this module

    parser = argparse.ArgumentParser(prog="python -m schemas.avro_schema", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the .avsc files, publish new versions")
    mode.add_argument("--check", action="store_true", help="fail if any .avsc is stale or unpublished")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_all(ALL_RECORDS):
            print(f"wrote {path}")
    problems = stale_files(ALL_RECORDS)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and args.check:
        print("run: python -m schemas.avro_schema --write", file=sys.stderr)
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
