"""Knowledge search latency: full-text (English) and substring (unspaced scripts) queries (not a test).

Chunks of ~1,000 characters are COPied into a fresh schema of the embedded PostgreSQL, one tenant,
one knowledge base, half English and half Japanese; then ``projections.queries.search_chunks`` is
timed as ``search_knowledge`` and the API call it, one query at a time, for each kind of query.

    .venv/bin/python bench/bench_search.py --chunks 1000 5000 20000 --queries 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from infra.db import database_url
from infra.migrate import upgrade_database
from infra.settings import Settings
from infra.stack import running_stack
from projections.queries import search_chunks

TENANT = "tenant-bench"
KB = "kb-bench"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
ENGLISH = (
    "Refunds are accepted within thirty days of delivery. Shipping costs are paid by the customer. "
    "Opening hours are nine to five on weekdays; the shop is closed on Sundays and holidays. "
)
JAPANESE = (
    "当店の返金ポリシー。商品到着後30日以内であれば返金いたします。"
    "送料はお客様負担です。営業時間は午前9時から午後5時までです。"
)
WORDS_EN = ["invoice", "warranty", "delivery", "battery", "account", "password", "upgrade", "receipt"]
WORDS_JA = ["請求書", "保証", "配送", "電池", "口座", "暗証番号", "交換", "領収書"]
QUERIES = {
    "full-text, English (2 words)": "refund delivery",
    "substring, Japanese (1 term)": "返金",
    "substring, Japanese (2 terms)": "返金 送料",
    "substring, Japanese (rare term)": "暗証番号 交換",
}


def _text(n: int, rng: random.Random) -> str:
    japanese = n % 2 == 1
    base, words = (JAPANESE, WORDS_JA) if japanese else (ENGLISH, WORDS_EN)
    parts: list[str] = []
    while sum(map(len, parts)) < 1000:
        parts.append(base if rng.random() < 0.3 else rng.choice(words) * rng.randrange(1, 4))
    return ("" if japanese else " ").join(parts)[:1000]


def load(url: str, schema: str, chunks: int) -> None:
    rng = random.Random(11)
    with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
        conn.execute(
            "INSERT INTO knowledge_base (kb_id, tenant_id, name, created_at) VALUES (%s, %s, 'kb', %s)",
            (KB, TENANT, NOW),
        )
        conn.execute(
            "INSERT INTO document (kb_id, document_id, tenant_id, title, content_type, content_uri,"
            " size_bytes, chunk_count, added_at) VALUES (%s, 'doc', %s, 't', 'text/plain', NULL, 1, %s, %s)",
            (KB, TENANT, chunks, NOW),
        )
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY chunk (chunk_id, kb_id, document_id, tenant_id, ordinal, text) FROM STDIN"
            ) as copy,
        ):
            for n in range(chunks):
                copy.write_row((f"doc:{n}", KB, "doc", TENANT, n, _text(n, rng)))
        conn.execute("ANALYZE chunk")


async def measure(settings: Settings, chunks: int, queries: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(upgrade_database, settings.database, schema=schema)
    url = database_url(settings.database)
    await asyncio.to_thread(load, url.replace("+psycopg", ""), schema, chunks)
    engine = create_async_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        for label, query in QUERIES.items():
            times: list[float] = []
            hits = 0
            async with sessions() as session:
                for i in range(queries + 5):
                    started = time.perf_counter()
                    found = await search_chunks(session, TENANT, query, kb_ids=[KB], limit=5)
                    if i >= 5:  # the first ones warm the caches
                        times.append((time.perf_counter() - started) * 1000)
                    hits = len(found)
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            print(
                f"| {chunks:,} | {label} | {statistics.median(times):.2f} | {p95:.2f} | {hits} |",
                flush=True,
            )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per kind")
    args = parser.parse_args()
    print("| chunks | query | p50 ms | p95 ms | hits |\n|---:|---|---:|---:|---:|", flush=True)
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_stack(Settings(env="test", data_dir=Path(data_dir)), durable=False) as stack,
    ):
        for chunks in args.chunks:
            asyncio.run(measure(stack.settings, chunks, args.queries))


if __name__ == "__main__":
    main()
