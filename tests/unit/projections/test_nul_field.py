"""Where a record holds a NUL: the runner refuses such a record before anything reads it."""

from __future__ import annotations

import dataclasses

from projections.runner import nul_field
from schemas.agents import AgentCreated
from tests.support.examples import example_record


@dataclasses.dataclass(frozen=True)
class _Inner:
    text: str


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str
    tags: tuple[str, ...] = ()
    extra: dict[str, str] = dataclasses.field(default_factory=dict)
    inner: _Inner | None = None
    count: int = 0


def test_a_clean_record_has_none() -> None:
    assert nul_field(example_record(AgentCreated)) is None
    assert nul_field(_Outer("a", ("b",), {"c": "d"}, _Inner("e"), 3)) is None


def test_the_first_field_holding_one_is_named() -> None:
    assert nul_field(_Outer("a\x00")) == "record.name"
    assert nul_field(_Outer("a", ("ok", "b\x00"))) == "record.tags[1]"
    assert nul_field(_Outer("a", extra={"k": "v\x00"})) == "record.extra['k']"
    assert nul_field(_Outer("a", extra={"k\x00": "v"})) == "record.extra key"
    assert nul_field(_Outer("a", inner=_Inner("\x00"))) == "record.inner.text"
    assert nul_field(dataclasses.replace(example_record(AgentCreated), agent_id="a\x00")) == "record.agent_id"
