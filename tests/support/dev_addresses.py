"""A dev.json's contents for tests: addresses that point nowhere unless a test says otherwise."""

from __future__ import annotations

import dataclasses
from typing import Any

from voiceagent.devfile import DevAddresses

_NOWHERE = DevAddresses(
    bootstrap="127.0.0.1:1",
    database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
    api_url="http://127.0.0.1:1",
    api_key="k",
    edge_url="http://127.0.0.1:1",
    twilio_auth_token="t",
    standin_control_url=None,
    demo_agent_id=None,
    demo_number="+15550000000",
)


def dev_addresses(**overrides: Any) -> DevAddresses:
    """The unused addresses, with the given fields replaced."""
    return dataclasses.replace(_NOWHERE, **overrides)
