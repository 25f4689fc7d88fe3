"""The `voiceagent events` and `voiceagent archive` commands: thin shells over the eventlog modules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import typer
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from infra.eventlog.archive import Archiver, WrittenFile
from infra.eventlog.archive_file import archive_fs
from infra.eventlog.export import ExportSummary, StagedText, export_avro, export_jsonl, staged_text
from infra.eventlog.reading import EventFilter, read_range
from infra.eventlog.restore import RestoreError, restore_archive
from infra.eventlog.tail import tail_events
from infra.settings import Settings
from schemas.codec import DecodeError

events_app = typer.Typer(help="Follow or export the events of a topic.", no_args_is_help=True)
archive_app = typer.Typer(help="Archive the event log to Avro files, and restore it.", no_args_is_help=True)
err = Console(stderr=True)

TopicOpt = typer.Option(..., "--topic", "-t", help="topic name, e.g. voice.calls.events.v1")
CallOpt = typer.Option(None, "--call", help="only this aggregate id (the Kafka key)")
TypeOpt = typer.Option(None, "--type", help="only this record type (CallEnded or its full Avro name)")
SinceOpt = typer.Option(None, "--since", help="ISO time (UTC if no offset), by Kafka timestamp")
UntilOpt = typer.Option(None, "--until", help="ISO time, exclusive")
OutOpt = typer.Option(None, "--out", help="jsonl: a file (default stdout); avro: a directory")
ArchiveTopicsOpt = typer.Option([], "--topic", help="archive only these topics (default: the catalog)")
RestoreTopicsOpt = typer.Option([], "--topic", help="restore only these topics")


def _settings() -> Settings:
    settings = Settings()
    if settings.uses_embedded_broker:
        err.print(
            "[red]no broker: start `voiceagent dev` (its broker is found by itself), or set "
            "VOICE_KAFKA__BOOTSTRAP to a broker's host:port[/]"
        )
        raise typer.Exit(2)
    return settings


def when_option(text: str | None, option: str) -> datetime | None:
    """A CLI time option: ISO 8601, UTC when it names no zone; a clear error otherwise."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@events_app.command("tail")
def tail(
    topic: str = TopicOpt,
    call: str | None = CallOpt,
    type_name: str | None = TypeOpt,
    since: str | None = SinceOpt,
    output: str = typer.Option("pretty", "--format", help="pretty | jsonl"),
    limit: int | None = typer.Option(None, help="stop after this many events"),
) -> None:
    """Follow new events of a topic (from --since if given, else from now) until Ctrl-C."""
    if output not in ("pretty", "jsonl"):
        raise typer.BadParameter("tail prints pretty or jsonl", param_hint="--format")
    settings = _settings()
    event_filter = EventFilter(call_id=call, type_name=type_name, since=when_option(since, "--since"))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(tail_events(settings.kafka, topic, event_filter, output=output, limit=limit))
    except LookupError as exc:  # no such topic
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@events_app.command("export")
def export(
    topic: str = TopicOpt,
    call: str | None = CallOpt,
    type_name: str | None = TypeOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    output: str = typer.Option("jsonl", "--format", help="jsonl | avro"),
    out: Path | None = OutOpt,
) -> None:
    """Export the events of a time range as JSON lines or Avro object container files."""
    if output not in ("jsonl", "avro"):
        raise typer.BadParameter("export writes jsonl or avro", param_hint="--format")
    if output == "avro" and out is None:
        raise typer.BadParameter(
            "avro export needs --out DIR (one .avro file per record type)", param_hint="--out"
        )
    if out is not None:
        _refuse_unwritable(out, output)
    settings = _settings()
    event_filter = EventFilter(
        call_id=call,
        type_name=type_name,
        since=when_option(since, "--since"),
        until=when_option(until, "--until"),
    )
    summary = asyncio.run(_export(settings, topic, event_filter, output, out))
    if summary.total == 0:
        err.print(f"[yellow]no events in {topic}{_range_text(event_filter)} matched; nothing written[/]")
        raise typer.Exit(1)
    for name, count in sorted(summary.counts.items()):
        err.print(f"{count:>9}  {name}")
    err.print(f"[green]exported {summary.total} events[/]" + (f" to {out}" if out else ""))


def _refuse_unwritable(out: Path, output: str) -> None:
    """Say before reading the topic, not after, that --out cannot be written."""
    problem = _out_problem(out.resolve(), output)
    if problem is not None:
        err.print(f"[red]--out {out}: {problem}[/]")
        raise typer.Exit(2)


def _out_problem(out: Path, output: str) -> str | None:
    if output == "avro":
        if out.exists() and not out.is_dir():
            return "is a file; avro export writes one .avro file per record type into a directory"
        # The directory is created on the first event: what exists of its path must allow that.
        directory = next(p for p in (out, *out.parents) if p.exists())
    else:
        if out.is_dir():
            return "is a directory; jsonl export writes one file"
        directory = out.parent
    if not directory.is_dir():
        return f"{directory} is not a directory" if directory.exists() else f"no directory {directory}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the directory {directory} is not writable"
    return None


def _range_text(f: EventFilter) -> str:
    parts = [
        f"since {f.since.isoformat()}" if f.since else "",
        f"until {f.until.isoformat()}" if f.until else "",
    ]
    extra = [f"call {f.call_id}" if f.call_id else "", f"type {f.type_name}" if f.type_name else ""]
    text = " ".join(p for p in parts + extra if p)
    return f" ({text})" if text else ""


async def _export(
    settings: Settings, topic: str, event_filter: EventFilter, output: str, out: Path | None
) -> ExportSummary:
    skipped: list[str] = []

    def undecodable(exc: DecodeError) -> None:
        skipped.append(str(exc))
        err.print(f"[red]not decodable, not exported:[/] {exc}")

    with _progress() as progress:
        task = progress.add_task(f"export {topic}", total=None)
        events = read_range(
            settings.kafka,
            topic,
            event_filter,
            on_plan=lambda total: progress.update(task, total=total),
            on_advance=lambda n: progress.advance(task, n),
            on_undecodable=undecodable,
        )
        try:
            if output == "avro":
                assert out is not None
                meta = {"voice.topic": topic, "voice.exported_at": datetime.now(UTC).isoformat()}
                return await export_avro(events, out, metadata=meta)
            with _text_out(out) as staged:
                summary = await export_jsonl(events, staged.stream)
                staged.keep = summary.total > 0  # an export that found nothing leaves --out as it was
                return summary
        except LookupError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        finally:
            if skipped:
                err.print(f"[red]{len(skipped)} records could not be decoded (listed above)[/]")


@contextlib.contextmanager
def _text_out(out: Path | None) -> Iterator[StagedText]:
    if out is None:
        yield StagedText(sys.stdout)
    elif out.exists() and not out.is_file():  # a device or a pipe (/dev/null): nothing to replace
        with out.open("w", encoding="utf-8") as stream:
            yield StagedText(stream)
    else:
        with staged_text(out.resolve()) as staged:  # resolved: a symlink keeps pointing at the export
            yield staged


@archive_app.command("run")
def archive_run(
    url: str | None = typer.Option(None, help="archive root (dir or fsspec URL); default the setting"),
    topic: list[str] = ArchiveTopicsOpt,
) -> None:
    """Run the archiver (group voice-archiver) until SIGINT/SIGTERM, then close its files."""
    settings = _settings()
    target = url or settings.archive_url
    _refuse_unwritable_archive(target)

    def written(f: WrittenFile) -> None:
        err.print(f"{f.path}  [dim]{f.records} records, offsets {f.first_offset}..{f.last_offset}[/]")

    archiver = Archiver(settings.kafka, settings.archive, target, topics=topic or None, on_file=written)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, archiver.stop)
        await archiver.run()

    err.print(f"archiving to {target} (Ctrl-C flushes and stops)")
    asyncio.run(main())
    err.print(f"[green]stopped: {archiver.records_written} records in {archiver.files_written} files[/]")


@archive_app.command("restore")
def archive_restore(
    source: str = typer.Argument(..., help="archive root (dir or fsspec URL)"),
    force: bool = typer.Option(False, "--force", help="restore into topics that already hold records"),
    topic: list[str] = RestoreTopicsOpt,
) -> None:
    """Republish an archive into the broker (keys, headers, partitions and order kept)."""
    settings = _settings()
    fs, root = _archive_fs(source)
    if not fs.exists(root):
        err.print(f"[red]no archive at {source}[/]")
        raise typer.Exit(2)
    with _progress() as progress:
        task = progress.add_task("restore", total=None)
        try:
            summary = asyncio.run(
                restore_archive(
                    settings.kafka,
                    source,
                    force=force,
                    topics=topic or None,
                    on_plan=lambda total: progress.update(task, total=total),
                    on_advance=lambda n: progress.advance(task, n),
                )
            )
        except RestoreError as exc:
            progress.stop()
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    if not summary.published:
        err.print(f"[yellow]no archive files under {source}[/]")
        raise typer.Exit(1)
    for tp in summary.appended_after_foreign:
        err.print(f"[yellow]{tp.topic}[{tp.partition}] held other records; archive appended after them[/]")
    skipped = sum(summary.skipped_present.values())
    topics = len({tp.topic for tp in summary.published})
    err.print(
        f"[green]restored {summary.total} records[/] into {topics} topics"
        + (f"; {skipped} were already there" if skipped else "")
        + (f"; created {', '.join(summary.created_topics)}" if summary.created_topics else "")
    )


def _archive_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """``archive_fs``, with a message and exit 2 for a URL fsspec cannot open."""
    try:
        return archive_fs(url)
    except ImportError as exc:  # fsspec knows the protocol; its package is not installed
        package = _package_of(url)
        install = f" (pip install {package})" if package else ""
        err.print(f"[red]cannot open the archive {url}: {exc}{install}[/]")
    except ValueError as exc:
        err.print(
            f"[red]cannot open the archive {url}: {exc}. Give a directory or an fsspec URL "
            "(file://, s3://, gs://, abfs://, memory://)[/]"
        )
    raise typer.Exit(2)


def _package_of(url: str) -> str | None:
    protocol = url.split("://", 1)[0] if "://" in url else ""
    module = str(known_implementations.get(protocol, {}).get("class", "")).split(".")[0]
    return module if module and module != "fsspec" else None


def _refuse_unwritable_archive(url: str) -> None:
    """Write and delete a probe file now, rather than fail at the first flush minutes later."""
    fs, root = _archive_fs(url)
    probe = f"{root.rstrip('/')}/.voiceagent-probe-{uuid.uuid4().hex}"
    try:
        if isinstance(fs, LocalFileSystem):  # object stores have no directories to make
            fs.makedirs(root, exist_ok=True)
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except Exception as exc:  # whatever the filesystem refuses with: OSError locally, its own elsewhere
        err.print(f"[red]cannot write to the archive {url}: {type(exc).__name__}: {exc}[/]")
        raise typer.Exit(2) from None
