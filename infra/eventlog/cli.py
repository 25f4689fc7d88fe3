"""The `voiceagent events` commands: thin shells over the eventlog modules (archive: archive_cli)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import typer
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

from infra.eventlog.export import ExportSummary, StagedText, export_avro, export_jsonl, staged_text
from infra.eventlog.reading import EventFilter, read_range
from infra.eventlog.schema_registry import SchemaRegistryError
from infra.eventlog.tail import tail_events
from infra.settings import Settings
from schemas.codec import DecodeError

events_app = typer.Typer(help="Follow or export the events of a topic.", no_args_is_help=True)
err = Console(stderr=True)

TopicOpt = typer.Option(..., "--topic", "-t", help="topic name, e.g. voice.calls.events.v1")
CallOpt = typer.Option(None, "--call", help="only this aggregate id (the Kafka key)")
TypeOpt = typer.Option(None, "--type", help="only this record type (CallEnded or its full Avro name)")
SinceOpt = typer.Option(None, "--since", help="ISO time (UTC if no offset), by Kafka timestamp")
UntilOpt = typer.Option(None, "--until", help="ISO time, exclusive")
OutOpt = typer.Option(None, "--out", help="jsonl: a file (default stdout); avro: a directory")


def broker_settings() -> Settings:
    """The settings, or a message and exit 2 when no broker is named (tools need a running one)."""
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


def progress_bar() -> Progress:
    """A progress bar on stderr, for the long commands (export, restore)."""
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
    settings = broker_settings()
    event_filter = EventFilter(call_id=call, type_name=type_name, since=when_option(since, "--since"))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(tail_events(settings.kafka, topic, event_filter, output=output, limit=limit))
    except (LookupError, SchemaRegistryError) as exc:  # no such topic; Confluent ids unreadable
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
    allow_undecodable: bool = typer.Option(
        False, "--allow-undecodable", help="exit 0 even when records that do not decode were left out"
    ),
) -> None:
    """Export the events of a time range as JSON lines or Avro object container files.

    Exit codes: 0 exported, 1 nothing matched, 2 bad options or no such topic, 3 some records did
    not decode and were left out (listed on stderr; --allow-undecodable makes that 0).
    """
    if output not in ("jsonl", "avro"):
        raise typer.BadParameter("export writes jsonl or avro", param_hint="--format")
    if output == "avro" and out is None:
        raise typer.BadParameter(
            "avro export needs --out DIR (one .avro file per record type)", param_hint="--out"
        )
    if out is not None:
        _refuse_unwritable(out, output)
    settings = broker_settings()
    event_filter = EventFilter(
        call_id=call,
        type_name=type_name,
        since=when_option(since, "--since"),
        until=when_option(until, "--until"),
    )
    summary, skipped = asyncio.run(_export(settings, topic, event_filter, output, out))
    if summary.total == 0 and not skipped:
        err.print(f"[yellow]no events in {topic}{_range_text(event_filter)} matched; nothing written[/]")
        raise typer.Exit(1)
    for name, count in sorted(summary.counts.items()):
        err.print(f"{count:>9}  {name}")
    err.print(f"[green]exported {summary.total} events[/]" + (f" to {out}" if out else ""))
    if skipped and not allow_undecodable:
        # A partial export must not pass for a whole one in a script.
        err.print(f"[red]incomplete: {skipped} records left out (--allow-undecodable to accept)[/]")
        raise typer.Exit(3)


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
) -> tuple[ExportSummary, int]:
    """The export's summary, and how many records did not decode (each reported on stderr)."""
    skipped: list[str] = []

    def undecodable(exc: DecodeError) -> None:
        skipped.append(str(exc))
        err.print(f"[red]not decodable, not exported:[/] {exc}")

    with progress_bar() as progress:
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
                return await export_avro(events, out, metadata=meta), len(skipped)
            with _text_out(out) as staged:
                summary = await export_jsonl(events, staged.stream)
                staged.keep = summary.total > 0  # an export that found nothing leaves --out as it was
                return summary, len(skipped)
        except (LookupError, SchemaRegistryError) as exc:
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
