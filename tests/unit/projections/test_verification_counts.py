"""The log side of a replay's verification leaves out what the projections refuse by their own rules."""

from __future__ import annotations

import dataclasses

from projections.runner import MAX_AGGREGATE_CHARS
from projections.verification import LogCounts
from schemas.ids import CallId, TenantId
from tests.integration.readside.call_stream import call_events


def test_refused_records_are_not_counted_and_valid_ones_are() -> None:
    events = call_events("tenant-1", "call-1", "agent-1")
    counts = LogCounts()
    for event in events:
        counts.add(event)
    expected = counts.expected_rows()
    refused = [
        dataclasses.replace(events[2], tenant_id=TenantId("tenant-2"), seq=99),  # another tenant's
        dataclasses.replace(events[0], call_id=CallId("call-\x00")),  # a NUL
        dataclasses.replace(events[0], call_id=CallId("c" * (MAX_AGGREGATE_CHARS + 1))),  # too long a key
        dataclasses.replace(events[0], call_id=CallId("call-2"), seq=0),  # no position
    ]
    for record in refused:
        counts.add(record)
    assert counts.refused == len(refused)
    assert counts.expected_rows() == expected
    assert expected["call"] == 1
    assert expected["call_event"] == len(events)
