"""Detects a fresh (empty) embedded broker beside kept read models, and reconciles the two.

The embedded Tansu broker keeps its log in memory, while PostgreSQL keeps the read models on
disk. After a restart the read models remember offsets the new, empty log never had. We restore
the log from the local archive when there is one (the archiver runs in the dev stack), with
every service's consumer group at its end, and otherwise reset the projections' offsets so new
events are not skipped; rows are never lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from aiokafka import TopicPartition
from rich.console import Console

from infra.db import database_url
from infra.eventlog.archive import ARCHIVER_GROUP, list_files
from infra.eventlog.archive_file import archive_fs
from infra.eventlog.restore import RestoreError, restore_archive
from infra.kafka import make_consumer, start_consumer, stop_consumer
from infra.settings import Settings
from schemas.catalog import CATALOG


def reconcile_fresh_broker(settings: Settings, console: Console) -> list[str]:
    """Notes for the operator about what was found and done; empty when nothing was needed.

    An empty broker with an archive is always restored, whatever the read models hold: with no
    checkpoints (a new database) the archiver would otherwise start again at offset 0 and meet
    the archive's files of the same names (it refuses to replace them: ArchiveConflictError).
    """
    if asyncio.run(_log_size(settings)) > 0:
        return []
    archive = settings.archive_url
    if _holds_files(archive):
        with console.status("the broker is empty and the archive is not: restoring the archive..."):
            summary = asyncio.run(restore_archive(settings.kafka, archive))
        restored = {(tp.topic, tp.partition): count for tp, count in summary.published.items()}
        behind = _clamp_checkpoints(settings, restored)
        ends = {tp: count for tp, count in summary.published.items() if count > 0}
        asyncio.run(_start_groups_at(settings, service_groups(settings), ends))
        notes = [
            f"fresh broker: restored {summary.total} events from the archive in {archive}; "
            "the services go on from its end"
        ]
        if behind:
            notes.append(
                "the read models had applied events the archive never got (written after its last file, "
                f"e.g. at a hard stop); their rows stay, and projections {', '.join(sorted(behind))} "
                "will apply the services' next events even where those reuse the lost events' numbers"
            )
        return notes
    if _checkpoint_total(settings) == 0:
        return []
    _reset_checkpoints(settings)
    return [
        "fresh broker: the event log is empty but the read models are kept (no archive to restore); "
        "projection offsets were reset so new events apply, and existing rows stay as they were"
    ]


def _holds_files(url: str) -> bool:
    """Whether the archive at ``url`` (a directory or any fsspec URL) has archived records."""
    try:
        fs, root = archive_fs(url)
        return any(True for _ in list_files(fs, root))
    except FileNotFoundError:
        return False
    except (OSError, ValueError, ImportError) as err:  # an unknown protocol, a missing package
        raise RestoreError(f"cannot open the archive URL {url}: {err}") from err


def service_groups(settings: Settings) -> list[str]:
    """The consumer groups of the services `voiceagent dev` runs, as their own settings name them."""
    from streams.dialer.config import DialerSettings
    from streams.summary.__main__ import SummarySettings
    from streams.webhooks.__main__ import WebhookSettings
    from streams.writers.app import DEFAULT_APP_ID as WRITERS_APP_ID

    return [
        settings.streams.app_id,  # a Faust app's group is its id: calls and session workers
        DialerSettings().app_id,
        WRITERS_APP_ID,
        WebhookSettings().group_id,
        f"{WebhookSettings().group_id}.read",  # how far each partition was read (ADR 21)
        SummarySettings().group_id,
        f"{SummarySettings().group_id}.read",
        ARCHIVER_GROUP,
    ]


async def _start_groups_at(settings: Settings, groups: list[str], ends: dict[TopicPartition, int]) -> None:
    # A fresh broker has no committed offsets, so every service would read the restored log
    # from its start: the calls worker re-deciding every call (identical events appended a
    # second time, sessions reopened for calls long over), the webhooks sent again, the
    # archive archiving its own records again. What the restored log holds was handled before.
    if not ends:
        return
    for group in groups:
        consumer = make_consumer(settings.kafka, group_id=group)
        await start_consumer(consumer)
        try:
            consumer.assign(list(ends))
            await consumer.commit(ends)
        finally:
            await stop_consumer(consumer)


def _plain_url(settings: Settings) -> str:
    return database_url(settings.database).replace("postgresql+psycopg://", "postgresql://")


def _checkpoint_total(settings: Settings) -> int:
    with psycopg.connect(_plain_url(settings)) as conn:
        row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM projection_checkpoint").fetchone()
    return int(row[0]) if row else 0


def _clamp_checkpoints(settings: Settings, restored: dict[tuple[str, int], int]) -> set[str]:
    """Move checkpoints back to the restored log's end; the projections that were past it."""
    # Events applied after the archive's last file are gone from the log; new ones will reuse
    # their offsets, so no checkpoint may point past what the restored log holds.
    behind: set[str] = set()
    with psycopg.connect(_plain_url(settings)) as conn:
        rows = conn.execute(
            "SELECT projection, topic, partition, next_offset FROM projection_checkpoint"
        ).fetchall()
        for projection, topic, partition, next_offset in rows:
            end = restored.get((topic, partition), 0)
            if next_offset > end:
                behind.add(projection)
                conn.execute(
                    "UPDATE projection_checkpoint SET next_offset = %s"
                    " WHERE projection = %s AND topic = %s AND partition = %s",
                    (end, projection, topic, partition),
                )
        _forget_positions(conn, behind)
    return behind


def _reset_checkpoints(settings: Settings) -> None:
    with psycopg.connect(_plain_url(settings)) as conn:
        conn.execute("DELETE FROM projection_checkpoint")
        conn.execute("DELETE FROM aggregate_position")


def _forget_positions(conn: psycopg.Connection[Any], projections: set[str]) -> None:
    # The services rebuild their state from the shorter log and number their next events after
    # it: the dialer's next seq for an agent, a writer's next version. A position kept from the
    # lost events would make the projection skip those as already applied, silently. Positions
    # only guard against a record read twice, and these projections read on from the log's end.
    if projections:
        conn.execute("DELETE FROM aggregate_position WHERE projection = ANY(%s)", (sorted(projections),))


async def _log_size(settings: Settings) -> int:
    consumer = make_consumer(settings.kafka, group_id=None)
    await start_consumer(consumer)
    try:
        parts = [
            TopicPartition(spec.name, p)
            for spec in CATALOG
            for p in consumer.partitions_for_topic(spec.name) or ()
        ]
        # Tansu can under-report end offsets after batches (see infra.eventlog.reading), but any
        # non-zero answer means the log is not empty, which is all we ask here.
        ends = await consumer.end_offsets(parts)
        return sum(ends.values())
    finally:
        await stop_consumer(consumer)
