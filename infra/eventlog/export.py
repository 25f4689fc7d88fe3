"""Writing decoded events out: JSON lines, or one standard Avro object container file per record type.

Avro export writes ``<dir>/<full record name>.avro`` whose file schema is exactly the published
``.avsc`` of that record type, so any Avro tool (avro-tools, Spark, DuckDB, the ``avro`` and
``fastavro`` packages) reads it with no knowledge of our wire framing and no top-level union.
Kafka coordinates are not part of the published schema; export JSON lines when you need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections import Counter
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastavro import parse_schema
from fastavro.write import Writer

from infra.eventlog.reading import DecodedEvent
from schemas.avro_schema import avro_schema, full_name

AVRO_CODEC = "deflate"


@dataclass
class ExportSummary:
    """How many events of each record type were written, and where."""

    counts: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def jsonl_line(event: DecodedEvent) -> str:
    """One JSON line (no newline) for ``event``."""
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))


async def export_jsonl(events: AsyncIterable[DecodedEvent], out: IO[str]) -> ExportSummary:
    """Write one JSON object per line to ``out``."""
    summary = ExportSummary()
    async for event in events:
        out.write(jsonl_line(event) + "\n")
        summary.counts[event.type_name] += 1
    return summary


async def export_avro(
    events: AsyncIterable[DecodedEvent], out_dir: Path, *, metadata: dict[str, str] | None = None
) -> ExportSummary:
    """Write ``<out_dir>/<record full name>.avro`` per record type met; nothing when no events."""
    summary = ExportSummary()
    writers: dict[type[Any], tuple[IO[bytes], Writer]] = {}
    try:
        async for event in events:
            cls = type(event.record)
            if cls not in writers:
                writers[cls] = _open_writer(out_dir, cls, metadata or {})
                summary.files.append(out_dir / f"{full_name(cls)}.avro")
            writers[cls][1].write(event.avro_fields())
            summary.counts[event.type_name] += 1
    finally:
        for fo, writer in writers.values():
            writer.flush()
            fo.close()
    return summary


@dataclass
class StagedText:
    """A text stream whose file replaces its target only if ``keep`` is true when it closes."""

    stream: IO[str]
    keep: bool = False


@contextlib.contextmanager
def staged_text(target: Path) -> Iterator[StagedText]:
    """Write to a temporary file beside ``target``, renamed over it on closing when ``keep`` was
    set; otherwise, and on any error, the temporary file is removed and ``target`` left as it was."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            staged = StagedText(stream)
            yield staged
        if staged.keep:
            os.chmod(tmp, _mode_for(target))  # mkstemp makes it 0600
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _open_writer(out_dir: Path, cls: type[Any], metadata: dict[str, str]) -> tuple[IO[bytes], Writer]:
    out_dir.mkdir(parents=True, exist_ok=True)
    fo = (out_dir / f"{full_name(cls)}.avro").open("wb")
    schema = parse_schema(avro_schema(cls))
    return fo, Writer(fo, schema, codec=AVRO_CODEC, metadata=dict(metadata))
