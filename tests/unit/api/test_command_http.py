"""A command at the HTTP edge: fresh envelopes, and the response each outcome settles to."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Response

from api.command_http import envelope, settle
from api.problems import ProblemError
from schemas.envelope import derive_event_id

STATUSES = {"not_found": 404, "invalid": 422}


class FakeBus:
    def __init__(self, outcome: dict[str, Any] | None) -> None:
        self._outcome = outcome
        self.asked: list[str] = []

    async def outcome(self, correlation_id: str) -> dict[str, Any] | None:
        self.asked.append(correlation_id)
        return self._outcome


def test_each_envelope_has_its_own_correlation_and_an_event_id_derived_from_it() -> None:
    first, second = envelope("t1"), envelope("t1")
    assert first["tenant_id"] == "t1"
    assert first["seq"] == 0
    assert first["correlation_id"] != second["correlation_id"]
    assert first["event_id"] == str(derive_event_id(first["correlation_id"], 0, "command"))


async def test_an_applied_command_settles_true_and_leaves_the_response_alone() -> None:
    bus, response = FakeBus({"status": "applied", "code": None, "reason": None}), Response()
    assert await settle(bus, "cmd_1", response, "/api/x/1", STATUSES)
    assert bus.asked == ["cmd_1"]
    assert response.status_code == 200
    assert "location" not in response.headers


async def test_a_command_with_no_outcome_yet_is_accepted_with_where_to_look() -> None:
    response = Response()
    assert not await settle(FakeBus(None), "cmd_1", response, "/api/x/1", STATUSES)
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/x/1"


@pytest.mark.parametrize(("code", "status"), [("not_found", 404), ("invalid", 422), ("archived", 409)])
async def test_a_rejection_is_a_problem_with_the_status_of_its_code(code: str, status: int) -> None:
    bus = FakeBus({"status": "rejected", "code": code, "reason": "because"})
    with pytest.raises(ProblemError) as raised:
        await settle(bus, "cmd_1", Response(), "/api/x/1", STATUSES)
    problem = raised.value
    assert (problem.status, problem.detail, problem.extra) == (status, "because", {"code": code})
