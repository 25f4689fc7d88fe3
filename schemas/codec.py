"""The one codec: record dataclasses to Kafka value bytes and back.

Two framings of the same Avro binary body:

* single-object encoding (default), from the Avro spec: ``C3 01``, the 8-byte CRC-64-AVRO
  fingerprint of the writer schema (little-endian), then the body. Any Avro library can
  decode it given the published ``.avsc`` files.
* Confluent wire format: ``00``, a 4-byte big-endian schema id, then the body; ids come from
  a ``SchemaIdResolver`` (a schema registry, or ``StaticSchemaIds`` in process).

Records are always written with the current schema, and read whichever published version
(``schemas/avsc/<domain>/<Name>/<fingerprint>.avsc``) wrote them: an older one is resolved into
the current class by Avro schema resolution (ADR 22).
"""

import io
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.avro_schema import (
    AVSC_DIR,
    avro_schema,
    crc64_fingerprint,
    fingerprint,
    full_name,
    published_versions,
    schema_json,
)
from schemas.convert import decoder, encoder
from schemas.registry import ALL_RECORDS, Record

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_LEN = 10
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_LEN = 5

T = TypeVar("T")


class DecodeError(Exception):
    """Bytes that are not a record of ours; the message says why in plain words."""


class EncodeError(ValueError):
    """A value that cannot be written (unknown record type, naive datetime, wrong type)."""


class SchemaIdResolver(Protocol):
    """Maps schemas to Confluent schema ids and back (a registry client, or a fixed table)."""

    def id_for(self, full_name: str, schema_json: str) -> int:
        """The id under which the given schema is (or gets) registered."""
        ...

    def schema_for(self, schema_id: int) -> str | None:
        """The schema text registered under ``schema_id``, or None if there is none."""
        ...


class StaticSchemaIds:
    """Deterministic in-process ids: 1, 2, ... over the sorted full names of the records.

    For round trips within one process only: a real registry numbers schemas in the order they
    were registered, so these ids say nothing about records framed by one.
    """

    def __init__(self, records: Iterable[type[Any]] = ALL_RECORDS) -> None:
        ordered = sorted(records, key=full_name)
        self._ids = {full_name(cls): i for i, cls in enumerate(ordered, start=1)}
        self._schemas = {i: schema_json(cls) for i, cls in enumerate(ordered, start=1)}

    def id_for(self, full_name: str, schema_json: str) -> int:
        """The fixed id of ``full_name``; KeyError for a record it was not built with."""
        if self._schemas.get(self._ids[full_name]) != schema_json:
            raise KeyError(f"{full_name}: schema differs from the one this table was built with")
        return self._ids[full_name]

    def schema_for(self, schema_id: int) -> str | None:
        """The schema text of ``schema_id``, if it is one of ours."""
        return self._schemas.get(schema_id)


@dataclass(frozen=True, slots=True)
class _Binding:
    """Everything needed to encode and decode one record class, computed once."""

    cls: type[Any]
    name: str
    schema: Any  # fastavro parsed schema
    to_avro: Callable[[Any], dict[str, Any]]
    from_avro: Callable[[dict[str, Any]], Any]


def _bind(cls: type[Any]) -> _Binding:
    return _Binding(cls, full_name(cls), parse_schema(avro_schema(cls)), encoder(cls), decoder(cls))


class Codec:
    """Encodes records to Kafka value bytes and decodes them back; build one and share it."""

    def __init__(
        self,
        resolver: SchemaIdResolver | None = None,
        records: Iterable[type[Any]] = ALL_RECORDS,
        published: Path = AVSC_DIR,
    ) -> None:
        """Single-object framing without ``resolver``; Confluent framing with one.

        ``published`` is the schema tree whose published versions this codec reads (read once,
        here): a record written with any of them decodes into the current class.
        """
        self._resolver = resolver
        self._by_cls = {cls: _bind(cls) for cls in records}
        # Fingerprint -> (binding, writer schema); the current version's writer is binding.schema
        # itself, which decode() reads without resolution: the hot path stays as it was.
        self._by_fp = {fingerprint(b.cls): (b, b.schema) for b in self._by_cls.values()}
        for b in self._by_cls.values():
            for fp, writer in published_versions(b.cls, published, older_only=True).items():
                if fp not in self._by_fp:
                    self._by_fp[fp] = (b, parse_schema(writer))
        self._by_name = {b.name: b for b in self._by_cls.values()}
        self._headers: dict[type[Any], bytes] = {}
        # Confluent ids map to (our binding, the writer schema that id denotes).
        self._by_id: dict[int, tuple[_Binding, Any]] = {}

    @classmethod
    def single_object(cls, records: Iterable[type[Any]] = ALL_RECORDS, published: Path = AVSC_DIR) -> "Codec":
        """Avro single-object encoding (the default wire format)."""
        return cls(None, records, published)

    @classmethod
    def confluent(cls, resolver: SchemaIdResolver, records: Iterable[type[Any]] = ALL_RECORDS) -> "Codec":
        """Confluent wire format with ids from ``resolver``."""
        return cls(resolver, records)

    @property
    def framing(self) -> str:
        """``"single-object"`` or ``"confluent"``."""
        return "single-object" if self._resolver is None else "confluent"

    def encode(self, record: Record) -> bytes:
        """The Kafka value bytes of ``record``."""
        binding = self._by_cls.get(type(record))
        if binding is None:
            raise EncodeError(f"{type(record).__qualname__} is not a registered record type")
        out = io.BytesIO()
        out.write(self._header(binding))
        try:
            schemaless_writer(out, binding.schema, binding.to_avro(record))
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{binding.name}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> Record:
        """The record in ``data``; DecodeError when it is not a whole record we know."""
        binding, writer_schema, start = self._locate(data)
        buf = io.BytesIO(data)
        buf.seek(start)
        reader_schema = None if writer_schema is binding.schema else binding.schema
        try:
            raw = cast(dict[str, Any], schemaless_reader(buf, writer_schema, reader_schema))
        except Exception as exc:  # fastavro raises EOFError, IndexError, UnicodeError, ...
            raise DecodeError(
                f"{binding.name}: truncated or malformed body ({type(exc).__name__}: {exc})"
            ) from exc
        if buf.tell() != len(data):
            raise DecodeError(f"{binding.name}: {len(data) - buf.tell()} unexpected trailing bytes")
        try:
            return binding.from_avro(raw)  # type: ignore[no-any-return]
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{binding.name}: body does not fit the record ({exc})") from exc

    def decode_as(self, data: bytes, cls: type[T]) -> T:
        """Decode and insist on one record type; DecodeError if ``data`` holds another."""
        record = self.decode(data)
        if not isinstance(record, cls):
            raise DecodeError(f"expected {cls.__qualname__}, got {type(record).__qualname__}")
        return record

    def record_type(self, data: bytes) -> type[Any]:
        """The record class ``data`` claims to hold, read from the header only."""
        return self._locate(data)[0].cls

    def _header(self, binding: _Binding) -> bytes:
        header = self._headers.get(binding.cls)
        if header is None:
            if self._resolver is None:
                header = SINGLE_OBJECT_MAGIC + fingerprint(binding.cls)
            else:
                schema_id = self._resolver.id_for(binding.name, schema_json(binding.cls))
                header = CONFLUENT_MAGIC + struct.pack(">I", schema_id)
            self._headers[binding.cls] = header
        return header

    def _locate(self, data: bytes) -> tuple[_Binding, Any, int]:
        """The binding, writer schema and body offset that the header of ``data`` names."""
        if not data:
            raise DecodeError("empty value")
        if self._resolver is None:
            return self._locate_single_object(data)
        return self._locate_confluent(data)

    def _locate_single_object(self, data: bytes) -> tuple[_Binding, Any, int]:
        if data[:2] != SINGLE_OBJECT_MAGIC:
            raise DecodeError(f"bad magic {data[:2].hex()!r}: not Avro single-object encoding")
        if len(data) < SINGLE_OBJECT_HEADER_LEN:
            raise DecodeError(f"truncated header: {len(data)} of 10 bytes")
        fp = data[2:SINGLE_OBJECT_HEADER_LEN]
        found = self._by_fp.get(fp)
        if found is None:
            raise DecodeError(f"unknown schema fingerprint {fp.hex()}")
        return found[0], found[1], SINGLE_OBJECT_HEADER_LEN

    def _locate_confluent(self, data: bytes) -> tuple[_Binding, Any, int]:
        assert self._resolver is not None
        if data[:1] != CONFLUENT_MAGIC:
            raise DecodeError(f"bad magic {data[:1].hex()!r}: not Confluent wire format")
        if len(data) < CONFLUENT_HEADER_LEN:
            raise DecodeError(f"truncated header: {len(data)} of 5 bytes")
        (schema_id,) = struct.unpack(">I", data[1:CONFLUENT_HEADER_LEN])
        found = self._by_id.get(schema_id)
        if found is None:
            found = self._resolve_id(schema_id)
            self._by_id[schema_id] = found
        return found[0], found[1], CONFLUENT_HEADER_LEN

    def _resolve_id(self, schema_id: int) -> tuple[_Binding, Any]:
        assert self._resolver is not None
        text = self._resolver.schema_for(schema_id)
        if text is None:
            raise DecodeError(f"unknown schema id {schema_id}")
        try:
            writer: dict[str, Any] = json.loads(text)
            name = f"{writer['namespace']}.{writer['name']}" if "namespace" in writer else writer["name"]
        except Exception as exc:  # whatever a registry returns must not crash a consumer
            raise DecodeError(f"schema id {schema_id}: unparseable schema ({exc})") from exc
        binding = self._by_name.get(name)
        if binding is None:
            raise DecodeError(f"schema id {schema_id}: unknown record type {name}")
        # Both parse the schema: one naming a type it does not define (a registry reference) or
        # otherwise invalid raises fastavro's own errors, which are this record's, not a crash.
        try:
            if crc64_fingerprint(writer) == fingerprint(binding.cls):
                return binding, binding.schema
            # An older registered version of one of our records: Avro resolution reads it into
            # the current class (BACKWARD compatibility is what makes this safe).
            return binding, parse_schema(writer)
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id}: invalid Avro schema ({exc})") from exc


def key_bytes(value: str | bytes | None) -> bytes | None:
    """Kafka key bytes: aggregate ids are UTF-8 text; dead letters keep the original bytes."""
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")
