"""Dialled number -> agent routing, folded from the agent events (the edge never reads read models)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from infra.eventlog.reading import end_offsets
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import KafkaSettings
from schemas.agents import AgentArchived, AgentVersionPublished
from schemas.catalog import AGENT_EVENTS
from schemas.codec import Codec, DecodeError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where a call to a number goes."""

    tenant_id: str
    agent_id: str
    agent_version: int
    record_calls: bool = False
    max_duration_s: int | None = None
    silence_timeout_s: int | None = None


class RoutingTable:
    """Pure fold of agent events: each number goes to the agent that holds it.

    An agent's latest published version states its numbers. A tenant moves a number between its
    own agents by publishing it on another one: the latest claim within the tenant takes it. A
    claim from another tenant (the API refuses that, but the topics are open to integrators and
    two publishes can race) never takes a number that is held: it waits in line, and gets it only
    once every claimant before it has let it go. The last publisher anywhere used to win.
    """

    def __init__(self, fallback: Route | None = None) -> None:
        self._claims: dict[str, list[str]] = {}  # number -> agent ids, first claim first
        self._routes: dict[str, Route] = {}  # agent id -> its latest version's route
        self._numbers_of: dict[str, tuple[str, ...]] = {}
        self.fallback = fallback

    def apply(self, event: object) -> None:
        if isinstance(event, AgentVersionPublished):
            agent_id = event.agent_id
            self._routes[agent_id] = Route(
                tenant_id=event.tenant_id,
                agent_id=agent_id,
                agent_version=event.version,
                record_calls=event.config.record_calls,
                max_duration_s=event.config.max_duration_s,
                silence_timeout_s=event.config.silence_timeout_s,
            )
            numbers = tuple(dict.fromkeys(_normalise(n) for n in event.config.phone_numbers))
            self._release(agent_id, set(self._numbers_of.get(agent_id, ())) - set(numbers))
            for number in numbers:
                claimants = self._claims.setdefault(number, [])
                if agent_id not in claimants:
                    holder = self._routes.get(claimants[0]) if claimants else None
                    if holder is None or holder.tenant_id == event.tenant_id:
                        claimants.insert(0, agent_id)  # the tenant's own latest claim
                    else:
                        claimants.append(agent_id)
                if claimants[0] != agent_id:
                    log.warning(
                        "agent %s (tenant %s) claims %s, held by agent %s; it waits until that one lets go",
                        agent_id,
                        event.tenant_id,
                        number,
                        claimants[0],
                    )
            self._numbers_of[agent_id] = numbers
        elif isinstance(event, AgentArchived):
            self._release(event.agent_id, set(self._numbers_of.pop(event.agent_id, ())))
            self._routes.pop(event.agent_id, None)

    def lookup(self, number: str) -> Route | None:
        claimants = self._claims.get(_normalise(number))
        return self._routes[claimants[0]] if claimants else self.fallback

    def __len__(self) -> int:
        return len(self._claims)

    def _release(self, agent_id: str, numbers: set[str]) -> None:
        for number in numbers:
            claimants = self._claims.get(number, [])
            if agent_id in claimants:
                claimants.remove(agent_id)
            if not claimants:
                self._claims.pop(number, None)


def _normalise(number: str) -> str:
    return "".join(ch for ch in number.strip() if ch.isdigit() or ch == "+")


class RoutingFeed:
    """Consumes the agent events from the beginning (no group: every edge node reads them all)."""

    def __init__(
        self, kafka: KafkaSettings, table: RoutingTable, codec: Codec, *, topic: str = AGENT_EVENTS.name
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._table = table
        self._codec = codec
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._probe_lock = asyncio.Lock()
        self._probe: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        # Agent events are rare: a long fetch wait keeps this consumer from busy-polling the broker.
        consumer = make_consumer(self._kafka, group_id=None, fetch_max_wait_ms=500)
        await start_consumer(consumer)
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        self._probe = make_consumer(self._kafka, group_id=None, fetch_max_wait_ms=100)
        await self._probe.start()
        if consumer.partitions_for_topic(self._topic):
            ends = await self._assign(consumer)
            self._task = asyncio.create_task(self._run(consumer, ends), name="edge-routing-feed")
        else:
            # Not created yet (an edge started before the platform's topics): reading nothing
            # for ever would leave the node "ready" with an empty table, refusing every call.
            log.warning("topic %s does not exist yet: waiting for it (not ready)", self._topic)
            self._task = asyncio.create_task(self._run_once_created(consumer), name="edge-routing-feed")

    async def _assign(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Read every partition from its start; the log's true ends, to know when caught up."""
        partitions = consumer.partitions_for_topic(self._topic) or set()
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        self._partitions = assigned
        await consumer.seek_to_beginning(*assigned)
        assert self._probe is not None
        # The true ends (not ListOffsets' under-report), so "ready" means every agent is known.
        return await end_offsets(self._probe, assigned)

    async def _run_once_created(self, consumer: AIOKafkaConsumer, poll_s: float = 1.0) -> None:
        while True:
            try:
                await consumer._client.force_metadata_update()  # the topic may exist by now
                if consumer.partitions_for_topic(self._topic):
                    ends = await self._assign(consumer)
                    break
            except KafkaError as err:
                log.warning("waiting for topic %s: %s", self._topic, err)
            await asyncio.sleep(poll_s)
        log.info("topic %s exists now: reading the agent events", self._topic)
        await self._run(consumer, ends)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._probe is not None:
            await stop_consumer(self._probe)

    async def refresh(self, timeout_s: float = 2.0) -> bool:
        """Apply every agent event the log holds now; False if that took longer than ``timeout_s``.

        A call to a number the table does not know may be to an agent published a moment ago:
        the edge reads the agent events with a long fetch wait, so it asks the log how far it
        goes and waits until the feed has read that far before refusing the call. Each caller
        takes its own reading of the log's end, so none waits on an older one.
        """
        if self._probe is None or not self._partitions:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                async with self._probe_lock:  # end_offsets assigns, seeks and fetches on the probe
                    try:
                        ends = await end_offsets(self._probe, self._partitions)
                    finally:
                        self._probe.unsubscribe()  # or its fetcher long-polls them from now on
                async with self._progress:
                    await self._progress.wait_for(lambda: self._reached(ends))
        except TimeoutError:
            log.warning("routing refresh: the agent events were not read within %.1fs", timeout_s)
            return False
        except Exception:  # the broker is away: refuse the call politely, not with a 500
            log.exception("routing refresh failed")
            return False
        return True

    def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

    async def _run(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        try:
            if not any(ends.values()):
                self.caught_up.set()
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        for record in records:
                            self._apply(record.value)
                    for tp in ends:
                        self._positions[tp] = await consumer.position(tp)
                except KafkaError as err:  # a dead feed would freeze routing while the node looks fine
                    log.warning("reading the agent events failed (%s); retrying in 1 s", err)
                    await asyncio.sleep(1.0)
                    continue
                async with self._progress:
                    self._progress.notify_all()
                if self._reached(ends):
                    self.caught_up.set()
        finally:
            await stop_consumer(consumer)

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            self._table.apply(self._codec.decode(value))
        except DecodeError as exc:
            log.warning("agent event that does not decode: %s", exc)
