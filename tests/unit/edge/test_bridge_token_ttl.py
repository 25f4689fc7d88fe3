"""A call's bridge token outlives the longest call an agent may have: a worker that fails over late
in a call must still reach it (at 120 s, a worker lost two minutes in left the caller alone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.node import EdgeNode
from edge.publisher import RecordingPublisher
from edge.telephony import RecordingTelephony
from infra.settings import Settings
from streams.writers.agent_rules import MAX_DURATION_S


def test_the_default_token_lasts_longer_than_any_call() -> None:
    settings = Settings(env="test")
    assert settings.edge.bridge_token_ttl_s > MAX_DURATION_S
    node = EdgeNode(settings, publisher=RecordingPublisher(), telephony=RecordingTelephony())
    grant = node.grant("call-1")
    assert grant.expires_at > datetime.now(UTC) + timedelta(seconds=MAX_DURATION_S)
