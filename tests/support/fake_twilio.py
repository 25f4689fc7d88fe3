"""The Twilio stand-in as the tests and benches use it: on a free port, every number answers.

The API itself (Calls.create as the real twilio client sends it, signed status callbacks, the
TwiML fetch, scripted outcomes per number) is the product's offline stand-in,
``streams.telephony.standin``; this only picks the defaults tests want.
"""

from __future__ import annotations

from typing import Any

from infra.process import free_port
from streams.telephony.standin.server import Outcome, PlacedCall, Refuse, TwilioStandIn

__all__ = ["FakeTwilio", "Outcome", "PlacedCall", "Refuse", "free_port"]


class FakeTwilio(TwilioStandIn):
    """The stand-in on a free port; ``async with FakeTwilio(token) as fake:`` serves it."""

    def __init__(self, auth_token: str, **options: Any) -> None:
        """``options``: callback_url, answer_hold_s, ring_s, fetch_twiml (see TwilioStandIn)."""
        super().__init__(auth_token, port=free_port(), **options)
