"""Generates the AsyncAPI 3.0.0 document of the event topics.

``python -m infra.eventlog.asyncapi --write|--check`` writes or checks ``docs/asyncapi.json``.

Built from the topic catalog and the committed ``.avsc`` files: one channel per topic (with its
key, partitions and retention as Kafka bindings), one message per record type whose payload is
the ``.avsc`` itself, and one ``receive`` operation per channel (integrators consume).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.avro_schema import avsc_path, full_name, record_doc
from schemas.catalog import CATALOG, TopicSpec
from schemas.generator import write_or_check

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = REPO_ROOT / "docs" / "asyncapi.json"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
KAFKA_BINDING = "0.5.0"
VERSION = "1.0.0"

_DESCRIPTION = (
    "The event topics of the voice-agent platform, for integrators who consume them directly. "
    "Values are Avro in single-object encoding (C3 01, the 8-byte little-endian CRC-64-AVRO "
    "fingerprint of the writer schema's Parsing Canonical Form, then the binary body). "
    "Message payloads are the current schemas; every version ever published is kept as "
    "schemas/avsc/<domain>/<Name>/<fingerprint>.avsc, and a record written with an older one "
    "is read with it as the writer schema and the current one as the reader schema. "
    "Keys are the UTF-8 aggregate id. Delivery is at-least-once: dedupe by event_id; on the "
    "events topics other than voice.postcall.events.v1, apply a record only if its seq is "
    "greater than the last applied for its key. "
    "See docs/integrators.md."
)


def channel_id(spec: TopicSpec) -> str:
    """A stable channel id from the topic name: ``voice.calls.events.v1`` → ``callsEventsV1``."""
    words = spec.name.split(".")[1:]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _message(cls: type[Any]) -> dict[str, Any]:
    schema = json.loads(avsc_path(cls).read_text(encoding="utf-8"))
    return {
        "name": full_name(cls),
        "title": cls.__name__,
        "summary": record_doc(cls),
        "contentType": "application/octet-stream",
        "description": f"Schema file: `{avsc_path(cls).relative_to(REPO_ROOT).as_posix()}`.",
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": schema},
    }


def _key_schema(spec: TopicSpec) -> dict[str, Any]:
    if spec.key == "key":
        return {
            "type": "string",
            "description": "the original record's key bytes",
            "contentEncoding": "binary",
        }
    return {"type": "string", "description": f"the record's {spec.key}, UTF-8"}


def _channel(spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy], "retention.ms": spec.retention_ms}
    return {
        "address": spec.name,
        "title": spec.name,
        "description": f"{spec.description} Key: `{spec.key}`.",
        "messages": {
            cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"} for cls in spec.record_types
        },
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": config,
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _operation(spec: TopicSpec) -> dict[str, Any]:
    cid = channel_id(spec)
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{cid}"},
        "summary": f"Consume {spec.name}, keyed by {spec.key}.",
        "messages": [{"$ref": f"#/channels/{cid}/messages/{cls.__name__}"} for cls in spec.record_types],
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING}},
    }


def document(specs: Sequence[TopicSpec] = CATALOG) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document as a JSON-like value."""
    messages: dict[str, Any] = {}
    for spec in specs:
        for cls in spec.record_types:
            message = _message(cls)
            message["bindings"] = {"kafka": {"key": _key_schema(spec), "bindingVersion": KAFKA_BINDING}}
            messages.setdefault(cls.__name__, message)
    return {
        "asyncapi": "3.0.0",
        "id": "urn:voiceagent:event-topics",
        "info": {"title": "Voice-agent event topics", "version": VERSION, "description": _DESCRIPTION},
        "defaultContentType": "application/octet-stream",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "the embedded dev broker (voiceagent dev prints its real port)",
            }
        },
        "channels": {channel_id(spec): _channel(spec) for spec in specs},
        "operations": {
            f"receive{channel_id(spec)[:1].upper()}{channel_id(spec)[1:]}": _operation(spec) for spec in specs
        },
        "components": {"messages": messages},
    }


def render() -> str:
    """The text of ``docs/asyncapi.json``."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``--write`` or ``--check``."""
    return write_or_check(
        argv, prog="python -m infra.eventlog.asyncapi", description=__doc__, path=DOC_PATH, render=render
    )


if __name__ == "__main__":
    sys.exit(main())
