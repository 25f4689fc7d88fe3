"""The correlation ids a writer remembers: enough to recognise a command it has already decided.

A command comes back with the correlation id it was first decided with in two ways:

* **Re-delivery after a crash.** The writers commit their command offsets every
  ``streams.commit_interval_s`` (1 s by default, ADR 13); a crash re-reads every command since the
  last commit, in partition order. Their events may be in the log (and the table) already.
* **A producer's re-send.** The API's producer retries a batch whose ack was lost (no idempotent
  producer on the embedded broker, ADR 5), within its 15 s request timeout: the copy lands after
  the original, with at most the commands other requests sent in between.

Either way the copy follows its original within a few seconds of the writer's work, and a writer
decides one command at a time per process, each after the broker acked its events and the
table write was flushed: a few milliseconds at best. ``RECENT_COMMANDS`` ids cover far more than
the commands one aggregate can take in that time, at about 39 bytes each in the stored state (an
API id is ``cmd_`` and 32 hex digits).

A copy older than the window is decided afresh: a knowledge base whose document is still there
resumes it (nothing left to index: no event); a removed document would be added again; any
other command is rejected (``already_exists``, ``not_found``, ``version_conflict``, ``archived``),
which changes no outcome (``command_result`` keeps a command's first one). ADR 26.
"""

from __future__ import annotations

RECENT_COMMANDS = 1000
"""How many of an aggregate's latest distinct correlation ids its state keeps, oldest first."""


def remember(recent: tuple[str, ...], correlation_id: str) -> tuple[str, ...]:
    """The window after an event of ``correlation_id``: added once, the oldest dropped past the bound.

    A command's events share its correlation id, so only its first event adds it.
    """
    if (recent and recent[-1] == correlation_id) or correlation_id in recent:
        return recent
    return (*recent, correlation_id)[-RECENT_COMMANDS:]
