"""The `voiceagent archive` commands: thin shells over the archiver and the restore."""

from __future__ import annotations

import asyncio
import signal
import uuid

import fsspec
import typer
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations

from infra.eventlog.archive import Archiver, WrittenFile
from infra.eventlog.archive_file import archive_fs
from infra.eventlog.cli import broker_settings, err, progress_bar
from infra.eventlog.restore import Gap, RestoreError, RestoreSummary, restore_archive
from infra.settings import KafkaSettings

archive_app = typer.Typer(help="Archive the event log to Avro files, and restore it.", no_args_is_help=True)
ArchiveTopicsOpt = typer.Option([], "--topic", help="archive only these topics (default: the catalog)")
RestoreTopicsOpt = typer.Option([], "--topic", help="restore only these topics")


@archive_app.command("run")
def archive_run(
    url: str | None = typer.Option(None, help="archive root (dir or fsspec URL); default the setting"),
    topic: list[str] = ArchiveTopicsOpt,
) -> None:
    """Run the archiver (group voice-archiver) until SIGINT/SIGTERM, then close its files."""
    settings = broker_settings()
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
    allow_gaps: bool = typer.Option(
        False, "--allow-gaps", help="restore an archive with files missing (later records shift down)"
    ),
    topic: list[str] = RestoreTopicsOpt,
) -> None:
    """Republish an archive into the broker (keys, headers, partitions and order kept)."""
    settings = broker_settings()
    fs, root = _archive_fs(source)
    if not fs.exists(root):
        err.print(f"[red]no archive at {source}[/]")
        raise typer.Exit(2)
    try:
        summary = restore_with_progress(
            settings.kafka, source, force=force, allow_gaps=allow_gaps, topics=topic or None
        )
    except RestoreError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if not summary.published:
        err.print(f"[yellow]no archive files under {source}[/]")
        raise typer.Exit(1)
    for line in gap_shifts(summary.gaps):
        err.print(f"[bold red]{line}[/]")
    for tp in summary.appended_after_foreign:
        err.print(f"[yellow]{tp.topic}[{tp.partition}] held other records; archive appended after them[/]")
    skipped = sum(summary.skipped_present.values())
    topics = len({tp.topic for tp in summary.published})
    err.print(
        f"[green]restored {summary.total} records[/] into {topics} topics"
        + (f"; {skipped} were already there" if skipped else "")
        + (f"; created {', '.join(summary.created_topics)}" if summary.created_topics else "")
    )


def restore_with_progress(
    kafka: KafkaSettings,
    source: str,
    *,
    force: bool,
    allow_gaps: bool = False,
    topics: list[str] | None = None,
    description: str = "restore",
) -> RestoreSummary:
    """``restore_archive`` with a progress bar on stderr; RestoreError goes on, the bar stopped."""
    with progress_bar() as progress:
        task = progress.add_task(description, total=None)
        return asyncio.run(
            restore_archive(
                kafka,
                source,
                force=force,
                allow_gaps=allow_gaps,
                topics=topics,
                on_plan=lambda total: progress.update(task, total=total),
                on_advance=lambda n: progress.advance(task, n),
            )
        )


def gap_shifts(gaps: list[Gap]) -> list[str]:
    """How each gap restored with --allow-gaps moved the offsets after it, one line each."""
    lines: list[str] = []
    shift: dict[tuple[str, int], int] = {}
    for gap in gaps:
        key = (gap.tp.topic, gap.tp.partition)
        shift[key] = shift.get(key, 0) + gap.size
        lines.append(
            f"{gap.describe()}: restored without them, so the records archived from offset "
            f"{gap.last + 1} on are now {shift[key]} lower (an archiver writing into this archive "
            "would meet its files there: archive to a new URL)"
        )
    return lines


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
