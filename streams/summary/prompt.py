"""The summary prompt and the reading of the model's answer (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass

_SPEAKER_NAMES = {"caller": "Caller", "agent": "Agent"}
MAX_TRANSCRIPT_CHARS = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    summary: str
    outcome_label: str | None


def build_prompt(turns: list[tuple[str, str]], labels: tuple[str, ...]) -> str:
    """Instructions, the allowed outcome labels on one line, then the transcript as ``Speaker: text``."""
    lines = []
    size = 0
    for speaker, text in turns:
        line = f"{_SPEAKER_NAMES.get(speaker, speaker.title())}: {' '.join(text.split())}"
        size += len(line)
        if size > MAX_TRANSCRIPT_CHARS:  # the start of a call says most about why it was made
            break
        lines.append(line)
    outcomes = ", ".join(labels) if labels else "resolved, unresolved"
    return "\n".join(
        [
            "Summarise this phone call between an AI agent and a caller in two or three sentences,",
            "and choose the one outcome label that fits it best.",
            'Answer as JSON: {"summary": "...", "outcome": "<one label>"}.',
            f"Outcomes: {outcomes}",
            "Transcript:",
            *lines,
        ]
    )


def read_reply(text: str, labels: tuple[str, ...]) -> Verdict:
    """The summary and label from the model's JSON (or plain text); a label off the list is dropped."""
    summary, outcome = text.strip(), None
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        body = None
    if isinstance(body, dict):
        summary = str(body.get("summary") or "").strip()
        outcome = body.get("outcome")
    wanted = {label.lower(): label for label in labels}
    label = wanted.get(str(outcome).strip().lower()) if isinstance(outcome, str) else None
    return Verdict(summary=summary[:4000], outcome_label=label)
