"""Topic bootstrap: create every catalog topic that is missing, with the catalog's settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import NewTopic

from infra.kafka import make_admin
from infra.settings import KafkaSettings
from schemas.catalog import CATALOG, TopicSpec

log = logging.getLogger(__name__)


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The broker-side configuration of a catalog topic."""
    return {"retention.ms": str(spec.retention_ms), "cleanup.policy": spec.cleanup_policy}


async def ensure_topics(kafka: KafkaSettings, specs: Iterable[TopicSpec] = CATALOG) -> list[str]:
    """Create the missing topics; return the names created. Safe to run any number of times."""
    admin = make_admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [spec for spec in specs if spec.name not in existing]
        if not wanted:
            return []
        new_topics = [
            NewTopic(
                name=spec.name,
                num_partitions=kafka.partitions_override or spec.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=topic_configs(spec),
            )
            for spec in wanted
        ]
        response = await admin.create_topics(new_topics)
        created = _created_names(response, {spec.name for spec in wanted})
        log.info("created topics: %s", ", ".join(sorted(created)) or "(none)")
        return sorted(created)
    finally:
        await admin.close()


def _created_names(response: object, wanted: set[str]) -> set[str]:
    # CreateTopics answers per topic; error 36 (already exists) means another node won the race.
    created: set[str] = set()
    for name, code, *rest in getattr(response, "topic_errors", []):
        if code == 0:
            created.add(name)
        elif code != 36:
            message = rest[0] if rest else ""
            raise RuntimeError(f"could not create topic {name}: error {code} {message}")
    return created & wanted
