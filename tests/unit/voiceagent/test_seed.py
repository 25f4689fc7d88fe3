"""Seeding the demo agent: `dev` says it is ready only once the API shows the agent."""

from __future__ import annotations

import httpx
import pytest

from voiceagent.seed import SeedError, seed_demo_agent


class LaggingApi:
    """An agents API whose read model shows a created agent only after ``lag`` more reads."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.created: str | None = None
        self.reads_of_created = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/agents":
            self.created = "agt_demo"
            return httpx.Response(202, headers={"Location": f"/api/agents/{self.created}"})
        if request.url.path == "/api/agents":
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        if self.created and request.url.path == f"/api/agents/{self.created}":
            self.reads_of_created += 1
            if self.reads_of_created > self.lag:
                return httpx.Response(200, json={"agent_id": self.created, "name": "demo"})
        return httpx.Response(404, json={"detail": "not found"})


def test_the_seed_returns_once_the_api_shows_the_new_agent() -> None:
    api = LaggingApi(lag=3)
    agent_id = seed_demo_agent("http://api", "key", timeout_s=10, transport=httpx.MockTransport(api))
    assert agent_id == "agt_demo"
    assert api.reads_of_created == 4  # three misses while the read model lagged, then the hit


def test_an_agent_that_never_shows_is_a_clear_error() -> None:
    api = LaggingApi(lag=10**9)
    with pytest.raises(SeedError, match="accepted but the API did not show it"):
        seed_demo_agent("http://api", "key", timeout_s=0.5, transport=httpx.MockTransport(api))
