"""A consumer of the voice-agent event topics needing only aiokafka, the `avro` package and the .avsc files.

    python examples/integrator_consumer.py --bootstrap HOST:PORT \
        --schemas schemas/avsc --topic voice.calls.events.v1 --from-beginning

It loads every ``.avsc`` under ``--schemas`` (every published version:
``<domain>/<Name>/<fingerprint>.avsc``, and each record's current ``<domain>/<Name>.avsc``),
indexes them by CRC-64-AVRO fingerprint, and prints one JSON line per event. Values in Avro
single-object encoding (``C3 01`` + fingerprint + body) are read with the schema the
fingerprint names as the writer schema and the record's current schema as the reader schema,
so a record written before a schema change comes out in today's shape; Confluent wire format
(``00`` + a 4-byte schema id + body) is read with the writer schema fetched from ``--registry``.

The fingerprint trap: the spec (and Java, and fastavro) drop ``logicalType`` from the Parsing
Canonical Form; the Python `avro` package (1.12) keeps it, so strip it before fingerprinting.

Delivery is at-least-once: a re-delivered event is byte-identical and has the same
``event_id``; this example drops repeats by ``event_id`` (keep that set bounded in production,
or track the last ``seq`` per key instead).

On the embedded broker a batch can become readable a moment before an earlier one (two producers
writing one partition at once; docs/integrators.md): a consumer that reads on past the missing
offset never sees it. ``OffsetHoles`` holds a partition at such a hole, fetching again from it,
until it fills or ``--hole-wait`` seconds pass. Apache Kafka leaves no holes in these topics.
With ``--group`` the group's offsets are committed after each batch is printed, never before
(aiokafka's auto-commit would commit on a crash too). A record that does not decode is reported
on stderr with its position, and the consumer goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import io
import json
import re
import struct
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
from aiokafka import AIOKafkaConsumer, TopicPartition


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def spec_fingerprint(schema_text: str) -> bytes:
    """The Avro spec's CRC-64-AVRO fingerprint (8 bytes, little-endian) of a schema's text."""
    stripped = avro.schema.parse(json.dumps(_without_logical_types(json.loads(schema_text))))
    fingerprint: bytes = stripped.fingerprint("CRC-64-AVRO")
    return fingerprint


def load_schemas(directory: Path) -> dict[bytes, tuple[avro.schema.Schema, avro.schema.Schema]]:
    """Every .avsc under ``directory`` by fingerprint: (its schema, the schema to read it as).

    A file named by its fingerprint is a published version; any other file is the current
    schema of its record, which reads every version of that record.
    """
    found = []
    for path in sorted(directory.rglob("*.avsc")):
        text = path.read_text(encoding="utf-8")
        found.append((path, text, avro.schema.parse(text)))
    current = {
        schema.fullname: schema  # type: ignore[attr-defined]
        for path, _, schema in found
        if not re.fullmatch("[0-9a-f]{16}", path.stem)
    }
    return {
        spec_fingerprint(text): (schema, current.get(schema.fullname, schema))  # type: ignore[attr-defined]
        for _, text, schema in found
    }


class Decoder:
    """Decodes value bytes in either framing."""

    def __init__(
        self, by_fingerprint: dict[bytes, tuple[avro.schema.Schema, avro.schema.Schema]], registry: str | None
    ) -> None:
        self._by_fingerprint = by_fingerprint
        self._readers = {reader.fullname: reader for _, reader in by_fingerprint.values()}  # type: ignore[attr-defined]
        self._registry = registry
        self._by_id: dict[int, avro.schema.Schema] = {}

    def decode(self, value: bytes | None) -> tuple[str, dict[str, Any]]:
        """``(full record name, fields)``; ValueError if the bytes are not a record we know."""
        if value is None:
            raise ValueError("no value (a tombstone): not an event")
        if value[:2] == b"\xc3\x01" and len(value) >= 10:
            schemas = self._by_fingerprint.get(value[2:10])
            if schemas is None:
                raise ValueError(f"unknown fingerprint {value[2:10].hex()}: update your .avsc files")
            writer, reader = schemas
            body = value[10:]
        elif value[:1] == b"\x00" and len(value) >= 5:
            writer = self._schema_for_id(struct.unpack(">I", value[1:5])[0])
            reader = self._readers.get(writer.fullname, writer)  # type: ignore[attr-defined]
            body = value[5:]
        else:
            raise ValueError(f"unknown framing {value[:2].hex()}")
        name: str = reader.fullname  # type: ignore[attr-defined]
        try:
            fields: dict[str, Any] = avro.io.DatumReader(writer, reader).read(  # type: ignore[assignment]
                avro.io.BinaryDecoder(io.BytesIO(body))
            )
        except Exception as exc:  # avro has its own errors for a body cut short or corrupt
            raise ValueError(f"{name}: the body does not decode ({type(exc).__name__}: {exc})") from exc
        return name, fields

    def _schema_for_id(self, schema_id: int) -> avro.schema.Schema:
        if schema_id not in self._by_id:
            if self._registry is None:
                raise ValueError("Confluent wire format needs --registry")
            url = f"{self._registry.rstrip('/')}/schemas/ids/{schema_id}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = json.load(response)["schema"]
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise ValueError(f"schema id {schema_id} is not in the registry") from exc
                raise  # the registry is failing: stop, before anything after this is committed
            try:
                self._by_id[schema_id] = avro.schema.parse(text)
            except Exception as exc:
                raise ValueError(f"schema id {schema_id}: not a schema we can read ({exc})") from exc
        return self._by_id[schema_id]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class OffsetHoles:
    """Where each partition must go on next, and how long it has waited at a hole there."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.next: dict[TopicPartition, int] = {}
        self._waiting_since: dict[TopicPartition, float] = {}

    def admit(self, tp: TopicPartition, offset: int, now: float) -> bool:
        """Whether the record at ``offset`` may be read now; False: fetch again from ``next[tp]``."""
        expected = self.next.get(tp)
        if expected is not None and offset > expected:
            since = self._waiting_since.setdefault(tp, now)
            if now - since < self.max_wait_s:
                return False
            print(
                f"{tp.topic}[{tp.partition}]: offsets {expected}-{offset - 1} never came; reading on",
                file=sys.stderr,
            )
        self._waiting_since.pop(tp, None)
        self.next[tp] = offset + 1
        return True


async def consume(args: argparse.Namespace) -> int:
    decoder = Decoder(load_schemas(Path(args.schemas)), args.registry)
    consumer = AIOKafkaConsumer(
        *args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        # Committed after each batch is printed, never before: a crash re-reads, it does not skip.
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: set[str] = set()
    holes = OffsetHoles(args.hole_wait)
    printed = 0
    idle_since = asyncio.get_running_loop().time()
    try:
        while args.max is None or printed < args.max:
            batches = await consumer.getmany(timeout_ms=500)
            now = asyncio.get_running_loop().time()
            if batches:
                idle_since = now
            elif args.idle_exit is not None and now - idle_since >= args.idle_exit:
                break
            for tp, messages in batches.items():
                for msg in messages:
                    if not holes.admit(tp, msg.offset, now):
                        consumer.seek(tp, holes.next[tp])  # the rest of this batch comes again
                        break
                    try:
                        name, fields = decoder.decode(msg.value)
                    except ValueError as exc:
                        print(f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc}", file=sys.stderr)
                        continue
                    if fields.get("event_id") in seen:
                        continue  # a redelivery: same bytes, same event_id
                    seen.add(fields.get("event_id", ""))
                    line = {
                        "topic": msg.topic,
                        "offset": msg.offset,
                        "type": name,
                        "event": _jsonable(fields),
                    }
                    print(json.dumps(line, ensure_ascii=False), flush=True)
                    printed += 1
            if batches and args.group is not None:
                await consumer.commit()
    finally:
        await consumer.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print voice-agent events as JSON lines.")
    parser.add_argument("--bootstrap", required=True, help="host:port of the Kafka broker")
    parser.add_argument("--schemas", required=True, help="directory holding the published .avsc files")
    parser.add_argument("--topic", action="append", required=True, help="topic to read (repeatable)")
    parser.add_argument("--group", default=None, help="consumer group (commits offsets); none by default")
    parser.add_argument("--registry", default=None, help="schema registry URL (Confluent wire format)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    parser.add_argument("--max", type=int, default=None, help="stop after this many events")
    parser.add_argument(
        "--hole-wait", type=float, default=5.0, help="seconds to wait at a missing offset (embedded broker)"
    )
    parser.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
    return asyncio.run(consume(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
