"""Where the writers' records go: the events partition of an aggregate, the state changelog."""

from __future__ import annotations

from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.transport.drivers.aiokafka import Producer

from infra.settings import Settings
from streams.writers.app import create_app, event_partition, state_changelog, state_table
from streams.writers.spec import agent_spec

IDS = [f"agt_{n}" for n in range(200)]


def test_the_writers_producer_partitions_with_aiokafkas_default_partitioner(tmp_path: Path) -> None:
    app = create_app(Settings(env="test", data_dir=tmp_path), app_id="writers-partition-test")
    assert app.conf.producer_partitioner is None
    producer = app.producer
    assert isinstance(producer, Producer)
    # What faust's Producer hands to the AIOKafkaProducer that sends ``emit``'s events.
    partitioner = producer._settings_default()["partitioner"]
    assert isinstance(partitioner, DefaultPartitioner)
    for aggregate in IDS:
        assert event_partition(aggregate, {2, 0, 1}) == partitioner(aggregate.encode(), [0, 1, 2], [0, 1, 2])


def test_an_aggregates_partition_is_the_java_clients_murmur2_of_its_id() -> None:
    assert murmur2(b"21") & 0xFFFFFFFF == -973932308 & 0xFFFFFFFF  # Kafka's own UtilsTest vector
    for aggregate in IDS:
        assert event_partition(aggregate, range(3)) == (murmur2(aggregate.encode()) & 0x7FFFFFFF) % 3


def test_aggregates_spread_over_every_partition() -> None:
    assert {event_partition(aggregate, range(3)) for aggregate in IDS} == {0, 1, 2}


def test_the_state_changelog_is_the_one_faust_names_for_the_table(tmp_path: Path) -> None:
    app = create_app(Settings(env="test", data_dir=tmp_path), app_id="writers-changelog-test")
    table = app.tables[state_table(agent_spec())]
    assert table.changelog_topic.get_topic_name() == state_changelog("writers-changelog-test", agent_spec())
