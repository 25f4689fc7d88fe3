"""Post-call summaries: `python -m streams.summary` asks the offline Gemini stand-in, the API shows it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dialer_readside import read_side
from dialer_rig import ROOT, DialerRig

from infra.settings import Settings
from projections.call_projection import CallProjection
from projections.summary_projection import SummaryProjection
from schemas import calls
from schemas.catalog import CALL_EVENTS
from schemas.dialer import CallSummarized
from schemas.envelope import derive_event_id
from schemas.ids import AgentId, CallId, CorrelationId, TenantId
from streams.standin.server import StandIn, StandInSettings

pytestmark = pytest.mark.integration

LABELS = ("booked", "cancelled", "unresolved")
TURNS = (
    ("caller", "I would like to book a table for two on Friday. Around eight if you can."),
    ("agent", "Your table for two is booked for Friday at eight. See you then."),
    ("caller", "Thanks, bye."),
)


@pytest.fixture
async def summary_worker(rig: DialerRig, tmp_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    async with StandIn(StandInSettings(cert_dir=tmp_path / "certs", pace=0.0)) as standin:
        env = rig.env() | {
            "VOICE_GEMINI__BASE_URL": standin.base_url,
            "VOICE_GEMINI__CA_FILE": str(standin.certs.ca_file),
            "VOICE_GEMINI__API_KEY": "offline-test-key",
            "VOICE_SUMMARY__GROUP_ID": f"summary-it-{uuid.uuid4().hex[:6]}",
        }
        log = (tmp_path / "summary.log").open("ab")
        proc = subprocess.Popen(  # noqa: ASYNC220 - it runs beside the test
            [sys.executable, "-m", "streams.summary"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        rig.procs.append(proc)
        try:
            yield proc
        finally:
            rig.procs.remove(proc)
            proc.terminate()
            proc.wait(timeout=20)
            print((tmp_path / "summary.log").read_text()[-3000:])


def _call(tenant: TenantId, agent: AgentId, call_id: CallId) -> list[Any]:
    start = datetime.now(UTC)
    env = {"tenant_id": tenant, "call_id": call_id, "correlation_id": CorrelationId(call_id)}

    def at(seq: int) -> dict[str, Any]:
        when = start + timedelta(seconds=seq)
        return env | {"seq": seq, "event_id": derive_event_id(call_id, seq), "occurred_at": when}

    events: list[Any] = [
        calls.CallReceived(
            **at(1),
            direction="inbound",
            from_number="+15550001111",
            to_number="+15550002222",
            agent_id=agent,
            agent_version=1,
        )
    ]
    for index, (speaker, text) in enumerate(TURNS):
        events.append(
            calls.TranscriptSegment(
                **at(len(events) + 1),
                speaker=speaker,
                text=text,
                final=True,
                start_ms=index * 3000,
                end_ms=index * 3000 + 2500,
                segment_index=index,
            )
        )
    events.append(calls.CallEnded(**at(len(events) + 1), reason="caller_hung_up", ended_by="caller"))
    return events


async def test_dialer_summary_of_a_finished_call_is_recorded_and_shown_by_the_api(
    rig: DialerRig, settings: Settings, summary_worker: subprocess.Popen[bytes]
) -> None:
    projections = (CallProjection(name="calls-summary-it"), SummaryProjection(name="summaries-it"))
    async with read_side(settings, *projections) as side:
        tenant = TenantId(side.tenant.tenant_id)
        agent, _ = await rig.publish_agent(tenant, outcome_labels=LABELS)
        await _until_the_worker_has_the_labels(rig, tenant, agent)
        call_id = CallId(f"call-{uuid.uuid4().hex[:12]}")
        for event in _call(tenant, agent, call_id):
            await rig.send(event, CALL_EVENTS.name)
        await rig.log.wait_for(lambda: bool(rig.log.of(CallSummarized, call_id=call_id)), timeout_s=60)
        (summarized,) = rig.log.of(CallSummarized, call_id=call_id)
        assert (summarized.agent_id, summarized.outcome_label, summarized.seq) == (agent, "booked", 1)
        assert summarized.model == settings.gemini.summary_model
        # The stand-in keeps the first sentence of each turn.
        assert "Caller: I would like to book a table for two on Friday." in summarized.summary
        assert "Around eight" not in summarized.summary
        shown = await _shown(side.client, side.tenant.viewer, call_id)
    assert shown["summary"] == summarized.summary
    assert shown["outcome"] == "booked"
    assert shown["status"] == "completed"
    assert (shown["summary_status"], shown["summary_error"]) == ("summarized", None)


async def _until_the_worker_has_the_labels(rig: DialerRig, tenant: TenantId, agent: AgentId) -> None:
    """The worker reads the agents' versions beside the call events, in no set order between the two
    topics (a call summarised before its agent's version is read gets no label). Probe calls to
    ``agent`` are placed until one is summarised with one of its labels: the worker has them."""
    deadline = time.monotonic() + 60  # a guard only
    while True:
        probe = CallId(f"call-probe-{uuid.uuid4().hex[:12]}")
        for event in _call(tenant, agent, probe):
            await rig.send(event, CALL_EVENTS.name)
        (summarized,) = await _summarized(rig, probe)
        if summarized.outcome_label in LABELS:
            return
        assert time.monotonic() < deadline, "the summary worker never used the agent's labels"


async def _summarized(rig: DialerRig, call_id: CallId) -> list[Any]:
    await rig.log.wait_for(lambda: bool(rig.log.of(CallSummarized, call_id=call_id)), timeout_s=60)
    return rig.log.of(CallSummarized, call_id=call_id)


async def _shown(client: Any, headers: dict[str, str], call_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(f"/api/calls/{call_id}", headers=headers)
        if response.status_code == 200 and response.json()["summary"]:
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)
