"""A Twilio media socket for edge tests: records what the edge sends, taking it at once or not."""

from __future__ import annotations


class RecordingTwilioSocket:
    """What ``edge.call.TwilioSocket`` asks of a socket; ``takes_at_once=False`` is a full socket
    (or the ASGI route): every frame then goes through the awaited ``send_text``."""

    def __init__(self, *, takes_at_once: bool = True) -> None:
        self.sent: list[str] = []
        self.closed: int | None = None
        self.takes_at_once = takes_at_once
        self.awaited_sends = 0

    async def send_text(self, data: str) -> None:
        self.awaited_sends += 1
        self.sent.append(data)

    def try_send_text(self, data: str) -> bool:
        if not self.takes_at_once:
            return False
        self.sent.append(data)
        return True

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.closed is None:
            self.closed = code
