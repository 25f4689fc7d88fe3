"""A minimal faust-streaming app with a table, run as a worker process by the recovery test."""

from __future__ import annotations

import os

import faust

from streams import faust_transport

# The transport our own apps use (Faust's consumer with a short fetch wait): the test is about
# Faust on this broker as the platform runs it.
SCHEME = faust_transport.register(fetch_max_wait_ms=50)

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker=f"{SCHEME}://" + os.environ["COUNTER_BOOTSTRAP"],
    store="memory://",  # nothing on disk: after a restart the table can only come from the changelog
    datadir=os.environ["COUNTER_DATADIR"],  # Faust's default is ./{id}-data in the checkout
    web_enabled=False,
    topic_partitions=1,
    topic_replication_factor=1,
    table_standby_replicas=0,
    # Failover timing measured on Tansu (DESIGN.md); the defaults wait a minute for a dead member.
    broker_session_timeout=2.5,
    broker_heartbeat_interval=0.4,
    broker_rebalance_timeout=5.0,
    broker_commit_every=1,
)
source = app.topic(os.environ["COUNTER_SOURCE"], key_serializer="raw", value_serializer="raw")
counts_out = app.topic(os.environ["COUNTER_OUT"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions=1)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, _value in stream.items():
        name = key.decode()
        counts[name] += 1
        await counts_out.send(key=key, value=str(counts[name]).encode())
