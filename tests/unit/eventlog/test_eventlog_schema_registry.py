"""Confluent-framed records are read with the ids of the registry that framed them, or not at all.

The registry here is a small HTTP server on a real socket speaking ``GET /schemas/ids/{id}``,
with ids deliberately unlike the in-process static table's.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.eventlog.reading import codec_for
from infra.eventlog.schema_registry import SchemaRegistryError
from infra.settings import KafkaSettings
from schemas.avro_schema import full_name, schema_json
from schemas.calls import CallEnded, TranscriptSegment
from schemas.codec import Codec, DecodeError, StaticSchemaIds
from tests.support.examples import example_record
from voiceagent.cli import app


@dataclass
class FakeRegistry:
    url: str
    schemas: dict[int, str] = field(default_factory=dict)
    asked: list[int] = field(default_factory=list)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
            schema_id = int(found.group(1)) if found else -1
            fake.asked.append(schema_id)
            if schema_id in fake.schemas:
                self._answer(200, {"schema": fake.schemas[schema_id]})
            else:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _static_id(cls: type[Any]) -> int:
    return StaticSchemaIds().id_for(full_name(cls), schema_json(cls))


def _reframed(record: Any, schema_id: int) -> bytes:
    """What a bridge into a registry makes of our record: the same body behind its own id."""
    return b"\x00" + schema_id.to_bytes(4, "big") + Codec.single_object().encode(record)[10:]


def _confluent(url: str | None) -> Codec:
    return codec_for(KafkaSettings(wire_format="confluent", schema_registry_url=url))


def test_confluent_without_a_registry_is_refused_naming_the_setting() -> None:
    with pytest.raises(SchemaRegistryError, match="VOICE_KAFKA__SCHEMA_REGISTRY_URL"):
        _confluent(None)


def test_records_decode_as_the_types_their_registry_ids_stand_for(registry: FakeRegistry) -> None:
    # Each type registered under the id the static table gives the other one.
    ended_id, segment_id = _static_id(TranscriptSegment), _static_id(CallEnded)
    registry.schemas = {ended_id: schema_json(CallEnded), segment_id: schema_json(TranscriptSegment)}
    ended, segment = example_record(CallEnded, 1), example_record(TranscriptSegment, 2)
    codec = _confluent(registry.url)

    assert codec.decode(_reframed(ended, ended_id)) == ended
    assert codec.decode(_reframed(segment, segment_id)) == segment


def test_each_id_is_asked_of_the_registry_once(registry: FakeRegistry) -> None:
    registry.schemas = {7: schema_json(CallEnded)}
    codec = _confluent(registry.url)
    for n in range(3):
        assert isinstance(codec.decode(_reframed(example_record(CallEnded, n), 7)), CallEnded)
    assert registry.asked == [7]


def test_an_id_the_registry_does_not_know_is_a_decode_error(registry: FakeRegistry) -> None:
    with pytest.raises(DecodeError, match="unknown schema id 99"):
        _confluent(registry.url).decode(_reframed(example_record(CallEnded, 1), 99))


def test_an_unreachable_registry_stops_the_reader_naming_it() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(SchemaRegistryError, match=re.escape(f"{url}/schemas/ids/5")):
        _confluent(url).decode(_reframed(example_record(CallEnded, 1), 5))


def test_events_tail_refuses_confluent_without_a_registry() -> None:
    env = {"VOICE_KAFKA__BOOTSTRAP": "127.0.0.1:1", "VOICE_KAFKA__WIRE_FORMAT": "confluent"}
    result = CliRunner().invoke(app, ["events", "tail", "--topic", "voice.calls.events.v1"], env=env)
    assert result.exit_code == 2, result.output
    assert "VOICE_KAFKA__SCHEMA_REGISTRY_URL" in result.output
