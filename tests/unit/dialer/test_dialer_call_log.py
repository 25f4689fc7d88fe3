"""After a restart, the call log is searched only where the unreported attempts' CallReceived can
be: the partitions of the call inputs their call ids are keyed to, from the earliest one's start
less a margin for producers' clocks (``recovery.call_log_search``, ``call_log.logged_calls``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers.aiokafka import Producer

from infra.eventlog.reading import DecodedEvent, EventFilter
from infra.settings import KafkaSettings, Settings
from schemas.calls import CallReceived, TranscriptSegment
from schemas.catalog import CALL_INPUTS
from schemas.codec import Codec
from schemas.ids import CallId
from streams.dialer.app import create_dialer_app
from streams.dialer.call_log import call_input_partition, logged_calls
from streams.dialer.recovery import CALL_LOG_MARGIN, CallLogSearch, call_log_search
from tests.support.examples import example_record
from tests.unit.dialer.dialer_scenario import at, dialled
from tests.unit.dialer.test_dialer_restart_undialled import Sent, restarted, started_then_stopped
from tests.unit.dialer.test_dialer_shell_writes import Journal

CODEC = Codec.single_object()
IDS = [f"call-{n}" for n in range(200)]


def test_the_search_starts_at_the_earliest_unreported_start_less_the_margin() -> None:
    _, state = started_then_stopped("c1", "c2")
    attempts = list(state.live.values())
    search = call_log_search(attempts)
    assert search is not None
    assert search.call_ids == {"c1", "c2"}
    assert search.since == min(a.started_at for a in attempts) - CALL_LOG_MARGIN
    assert call_log_search([]) is None


def test_a_restarted_shell_searches_for_its_unreported_attempts_only() -> None:
    log, state = started_then_stopped("c1", "c2")
    shell = restarted(Sent(), log, dialled("c2", 1))
    search = shell.call_log_search()
    assert search is not None
    assert search.call_ids == {"c1"}  # c2's dial was reported
    assert search.since == state.live[CallId("c1")].started_at - CALL_LOG_MARGIN
    assert restarted(Sent(), log, dialled("c1", 1), dialled("c2", 1)).call_log_search() is None


def test_a_call_inputs_partition_is_the_one_the_dialers_producer_sends_its_call_to(tmp_path: Path) -> None:
    app = create_dialer_app(Settings(env="test", data_dir=tmp_path), Journal())
    assert app.conf.producer_partitioner is None
    producer = app.producer
    assert isinstance(producer, Producer)
    # What faust's Producer hands to the AIOKafkaProducer the dialer's CallReceived goes out by.
    partitioner = producer._settings_default()["partitioner"]
    assert isinstance(partitioner, DefaultPartitioner)
    numbers = list(range(CALL_INPUTS.partitions))
    for call_id in IDS:
        assert call_input_partition(call_id, set(numbers)) == partitioner(call_id.encode(), numbers, numbers)
    assert {call_input_partition(call_id, numbers) for call_id in IDS} == set(numbers)


class FakeRead:
    """Stands in for ``read_range``: records what it was asked, yields the records it is given
    from the partitions it was told to read."""

    def __init__(self, records: list[tuple[int, Any]], partitions: int = CALL_INPUTS.partitions) -> None:
        self.records = records
        self.numbers = list(range(partitions))
        self.asked: list[tuple[str, EventFilter, set[int]]] = []

    async def __call__(
        self,
        kafka: KafkaSettings,
        topic: str,
        event_filter: EventFilter,
        *,
        on_plan: Callable[[int], None],
        on_advance: Callable[[int], None],
        partitions: Callable[[list[int]], Collection[int]],
        codec: Codec,
        **_: Any,
    ) -> AsyncIterator[DecodedEvent]:
        chosen = set(partitions(self.numbers))
        self.asked.append((topic, event_filter, chosen))
        kept = [(p, r) for p, r in self.records if p in chosen]
        on_plan(len(kept))
        for offset, (partition, record) in enumerate(kept):
            on_advance(1)
            if event_filter.keeps_type(type(record)):
                yield DecodedEvent(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    timestamp_ms=0,
                    key=None,
                    headers=(),
                    record=record,
                )


async def test_only_the_partitions_of_the_unreported_calls_are_read_from_the_earliest_start() -> None:
    wanted = [CallId("call-1"), CallId("call-2")]
    other = next(CallId(c) for c in IDS if call_input_partition(c, range(12)) not in _partitions(wanted))
    search = CallLogSearch(call_ids=frozenset(wanted), since=at(0) - CALL_LOG_MARGIN)

    def received(call_id: str) -> tuple[int, CallReceived]:
        return call_input_partition(call_id, range(12)), example_record(CallReceived, call_id=call_id)

    transcript = example_record(TranscriptSegment, call_id=wanted[1])
    read = FakeRead([received(wanted[0]), received(other), (_partitions([wanted[1]]).pop(), transcript)])
    found = await logged_calls(KafkaSettings(), CODEC, search, read=read)
    assert found == {wanted[0]}  # call-2 has only a transcript; the other call is not asked for
    ((topic, event_filter, chosen),) = read.asked
    assert topic == CALL_INPUTS.name
    assert chosen == _partitions(wanted)
    assert call_input_partition(other, range(12)) not in chosen
    assert event_filter.since == search.since
    assert event_filter.keeps_type(CallReceived)
    assert not event_filter.keeps_type(TranscriptSegment)


def _partitions(call_ids: list[CallId]) -> set[int]:
    return {call_input_partition(c, range(12)) for c in call_ids}
