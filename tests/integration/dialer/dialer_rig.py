"""A running outbound-call path for the dialer's integration tests.

Fake Twilio API (in process) → the real edge (in process, status callbacks) → the calls worker
(``python -m streams``) → the dialer worker (``python -m streams.dialer`` over the real twilio
client). Everything meets on the session's real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from edge.server import EdgeServer
from edge.telephony import RecordingTelephony
from infra.kafka import make_consumer, make_producer
from infra.process import free_port
from infra.settings import Settings
from schemas.agents import AgentArchived, AgentConfig, AgentVersionPublished
from schemas.catalog import CALL_EVENTS, CALL_INPUTS, DIALER_EVENTS, POSTCALL_EVENTS, topics_for
from schemas.codec import Codec
from schemas.dialer import PlaceCall
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CampaignId, CorrelationId, EventId, TenantId
from streams.standin.server import StandIn, StandInSettings
from tests.integration.helpers import start_group_at_end
from tests.support.fake_twilio import FakeTwilio

ROOT = Path(__file__).parents[3]
AUTH_TOKEN = "dialer-test-auth-token"
DNC_NUMBER = "+15559990000"
CODEC = Codec.single_object()


def agent_config(**overrides: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "system_prompt": "You are calling to confirm an appointment.",
        "voice": "Puck",
        "language": "en-US",
        "model": "gemini-live",
        "max_duration_s": 300,
        "silence_timeout_s": 0,
        "record_calls": False,
        "max_concurrent_calls": 2,
        "answering_machine_policy": "hang_up",
        "timezone": "UTC",
        "phone_numbers": (f"+1555{uuid.uuid4().int % 10**7:07d}",),
    }
    return AgentConfig(**(values | overrides))


class Log:
    """Everything on the watched topics since the rig started, decoded."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.changed = asyncio.Event()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: Callable[[], str] = lambda: ""

    def of(self, kind: type, **fields: Any) -> list[Any]:
        return [
            r
            for r in self.records
            if isinstance(r, kind) and all(getattr(r, k) == v for k, v in fields.items())
        ]

    async def wait_for(self, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
        async def loop() -> None:
            while not check():
                if any(p.poll() is not None for p in self.procs):
                    raise AssertionError("a worker died:\n" + self.logs())
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 1.0)

        try:
            await asyncio.wait_for(loop(), timeout_s)
        except TimeoutError:
            recent = "\n".join(repr(r)[:300] for r in self.records[-25:])
            raise AssertionError(
                f"timed out; last records:\n{recent}\nworker logs:\n" + self.logs()[-1500:]
            ) from None


class DialerRig:
    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.edge_port = free_port()
        self.base = f"http://127.0.0.1:{self.edge_port}"
        twilio = settings.twilio.model_copy(
            update={"public_base_url": self.base, "auth_token": SecretStr(AUTH_TOKEN)}
        )
        edge = settings.edge.model_copy(
            update={"port": self.edge_port, "bridge_port": free_port(), "recordings_dir": tmp / "rec"}
        )
        self.settings = settings.model_copy(update={"twilio": twilio, "edge": edge})
        self.tmp = tmp
        self.fake = FakeTwilio(AUTH_TOKEN, answer_hold_s=0.2)
        self.log = Log()
        self.procs = self.log.procs
        self.log.logs = self.worker_logs
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._watch: asyncio.Task[None] | None = None
        self._edge: EdgeServer | None = None
        self.run_id = uuid.uuid4().hex[:6]
        self.standin = StandIn(StandInSettings(cert_dir=tmp / "certs", pace=1.0))

    def env(self) -> dict[str, str]:
        kafka = self.settings.kafka
        return os.environ | {
            "PYTHONPATH": str(ROOT),
            "VOICE_ENV": "test",
            "VOICE_KAFKA__BOOTSTRAP": kafka.bootstrap or "",
            "VOICE_KAFKA__PARTITIONS_OVERRIDE": str(kafka.partitions_override or ""),
            "VOICE_STREAMS__APP_ID": f"calls-dialer-it-{self.run_id}",
            "VOICE_STREAMS__SESSION_TIMEOUT_S": "2.5",
            "VOICE_STREAMS__HEARTBEAT_INTERVAL_S": "0.4",
            "VOICE_STREAMS__REBALANCE_TIMEOUT_S": "5",
            "VOICE_DATA_DIR": str(self.tmp),
            "VOICE_TWILIO__AUTH_TOKEN": AUTH_TOKEN,
            "VOICE_TWILIO__PUBLIC_BASE_URL": self.base,
            "VOICE_TWILIO__API_BASE_URL": self.fake.base_url,
            "VOICE_DIALER__APP_ID": f"dialer-it-{self.run_id}",
            "VOICE_DIALER__BACKOFF_BASE_S": "0.3",
            "VOICE_DIALER__TICK_INTERVAL_S": "0.1",
            "VOICE_DIALER__UNKNOWN_AGENT_GRACE_S": "2",
            "VOICE_DIALER__DO_NOT_CALL": json.dumps([DNC_NUMBER]),
            "TWILIO_REGION": "",
            "TWILIO_EDGE": "",
            # The calls worker talks to the offline Gemini stand-in when a media stream opens.
            "VOICE_GEMINI__BASE_URL": self.standin.base_url,
            "VOICE_GEMINI__CA_FILE": str(self.standin.certs.ca_file),
            "VOICE_GEMINI__API_KEY": "offline-test-key",
        }

    async def start(self) -> None:
        await self.standin.__aenter__()
        await self.fake.__aenter__()
        self._producer = make_producer(self.settings.kafka)
        await self._producer.start()
        await self._start_watching()
        await start_group_at_end(self.settings.kafka, f"calls-dialer-it-{self.run_id}", CALL_INPUTS.name)
        self._edge = EdgeServer(self.settings, telephony=RecordingTelephony())
        await self._edge.start()
        for module in ("streams", "streams.dialer"):
            out = (self.tmp / f"{module}.log").open("ab")
            self.procs.append(  # Popen does not block; the workers run beside the test
                subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", module], cwd=ROOT, env=self.env(), stdout=out, stderr=out
                )
            )

    async def _start_watching(self) -> None:
        consumer = make_consumer(self.settings.kafka, group_id=None)
        await consumer.start()
        topics = (DIALER_EVENTS.name, CALL_EVENTS.name, POSTCALL_EVENTS.name)
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        self._consumer = consumer

        async def watch() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                for messages in batches.values():
                    for message in messages:
                        if message.value is not None:
                            self.log.records.append(CODEC.decode(message.value))
                if batches:
                    self.log.changed.set()

        self._watch = asyncio.create_task(watch())

    def restart_dialer(self) -> None:
        """Stop the dialer worker and start it again (it rebuilds its state from the log)."""
        index = next(i for i, proc in enumerate(self.procs) if "streams.dialer" in str(proc.args))
        old = self.procs[index]
        old.terminate()
        try:
            old.wait(timeout=30)
        except subprocess.TimeoutExpired:
            old.kill()
            old.wait()
        out = (self.tmp / "streams.dialer.log").open("ab")
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "streams.dialer"], cwd=ROOT, env=self.env(), stdout=out, stderr=out
        )

    def worker_logs(self) -> str:
        return "\n".join((self.tmp / f"{m}.log").read_text()[-3000:] for m in ("streams", "streams.dialer"))

    async def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._watch is not None:
            self._watch.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._edge is not None:
            await self._edge.drain(deadline_s=0)
            await self._edge.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self.fake.__aexit__()
        await self.standin.__aexit__(None, None, None)

    async def send(self, record: Any, topic: str | None = None) -> None:
        """Write ``record`` to its (first) catalog topic, or to ``topic``, keyed as the catalog says."""
        assert self._producer is not None
        spec = next(s for s in topics_for(type(record)) if topic in (None, s.name))
        key = spec.key_of(record)
        await self._producer.send_and_wait(
            spec.name, CODEC.encode(record), key.encode() if isinstance(key, str) else key
        )

    async def publish_agent(self, tenant: TenantId, **overrides: Any) -> tuple[AgentId, AgentConfig]:
        agent_id = AgentId(f"agent-{uuid.uuid4().hex[:8]}")
        config = agent_config(**overrides)
        await self.send(
            AgentVersionPublished(
                tenant_id=tenant,
                agent_id=agent_id,
                seq=2,
                event_id=derive_event_id(agent_id, 2),
                occurred_at=datetime.now(UTC),
                correlation_id=CorrelationId("test"),
                version=1,
                config=config,
            )
        )
        return agent_id, config

    async def archive(self, tenant: TenantId, agent_id: AgentId) -> None:
        await self.send(
            AgentArchived(
                tenant_id=tenant,
                agent_id=agent_id,
                seq=3,
                event_id=derive_event_id(agent_id, 3),
                occurred_at=datetime.now(UTC),
                correlation_id=CorrelationId("test"),
                version=1,
            )
        )

    async def place(
        self, tenant: TenantId, agent_id: AgentId, to: str, *, key: str | None = None, **extra: Any
    ) -> CallId:
        call_id = CallId(f"call-{uuid.uuid4().hex[:12]}")
        await self.send(place_call(tenant, agent_id, to, call_id, key=key, **extra))
        return call_id


def place_call(
    tenant: TenantId, agent_id: AgentId, to: str, call_id: CallId, *, key: str | None = None, **extra: Any
) -> PlaceCall:
    """The API's PlaceCall command for call_id (idempotency key: the call id unless given)."""
    return PlaceCall(
        tenant_id=tenant,
        agent_id=agent_id,
        seq=0,
        event_id=EventId(str(uuid.uuid4())),
        occurred_at=datetime.now(UTC),
        correlation_id=CorrelationId(call_id),
        to_number=to,
        idempotency_key=key or call_id,
        call_id=call_id,
        campaign_id=CampaignId(extra.pop("campaign_id")) if "campaign_id" in extra else None,
        **extra,
    )


def new_tenant() -> TenantId:
    return TenantId(f"tenant-{uuid.uuid4().hex[:8]}")
