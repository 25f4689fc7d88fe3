"""A deterministic "post-call summary" for the stand-in's generateContent endpoint (pure).

The prompt is expected to hold a transcript as `Speaker: text` lines (after an optional
`Transcript:` line) and the allowed outcome labels on a line such as
`Outcomes: booked, cancelled, transferred, unresolved`. The summary keeps the first sentence
of each speaker turn; the outcome is the label whose stem occurs most often in the
transcript (ties go to the label listed first; no hit at all gives the last label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "Summary by the offline Gemini stand-in (no model involved)."
_OUTCOMES = re.compile(r"^\s*(?:possible\s+|allowed\s+)?outcomes?(?:\s+labels?)?\s*[:=]\s*(.+)$", re.I | re.M)
_TRANSCRIPT = re.compile(r"^\s*transcript\s*:?\s*$", re.I | re.M)
_SPEAKER_LINE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?([A-Za-z][A-Za-z _-]{0,30}?)\s*:\s*(\S.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_DEFAULT_OUTCOMES = ("resolved", "unresolved")


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    lines: tuple[tuple[str, str], ...]
    outcome: str

    def as_text(self) -> str:
        body = [f"{speaker}: {text}" for speaker, text in self.lines]
        return "\n".join([HEADER, *body, f"Outcome: {self.outcome}"])

    def as_json(self) -> dict[str, object]:
        text = " ".join(f"{speaker}: {text}" for speaker, text in self.lines)
        return {"summary": text, "outcome": self.outcome, "standin": True}


def outcome_labels(prompt: str) -> tuple[str, ...]:
    """The labels listed on the prompt's `Outcomes:` line, in order."""
    match = _OUTCOMES.search(prompt)
    if match is None:
        return _DEFAULT_OUTCOMES
    raw = match.group(1).strip().strip("[](){}")
    labels = [part.strip().strip("'\"`") for part in re.split(r"[,|/;]", raw)]
    return tuple(label for label in labels if label) or _DEFAULT_OUTCOMES


def transcript_turns(prompt: str) -> tuple[tuple[str, str], ...]:
    """(speaker, whole text) for every `Speaker: text` line of the transcript."""
    marker = _TRANSCRIPT.search(prompt)
    body = prompt[marker.end() :] if marker else prompt
    turns = []
    for line in body.splitlines():
        match = None if _OUTCOMES.match(line) else _SPEAKER_LINE.match(line)
        if match:
            turns.append((match.group(1).strip(), match.group(2).strip()))
    return tuple(turns)


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def stem(word: str) -> str:
    """A crude English stem, enough to find `booked` as "book" and `cancelled` as "cancel"."""
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # "transferred" -> "transferr" -> "transfer"; "calls" keeps its double l.
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                word = word[:-1]
            break
    return word


def choose_outcome(labels: tuple[str, ...], transcript: str) -> str:
    text = transcript.lower()
    best, best_hits = labels[-1], 0
    for label in labels:
        stems = {stem(w) for w in re.split(r"[\s_\-]+", label) if w}
        hits = sum(text.count(s) for s in stems if s)
        if hits > best_hits:
            best, best_hits = label, hits
    return best


def summarise(prompt: str) -> Summary:
    """The summary of the transcript in `prompt`; keywords are counted over whole turns."""
    turns = transcript_turns(prompt)
    if turns:
        searched = " ".join(text for _, text in turns)
    else:
        searched = " ".join(line for line in prompt.splitlines() if not _OUTCOMES.match(line))
    lines = tuple((speaker, first_sentence(text)) for speaker, text in turns)
    return Summary(lines=lines, outcome=choose_outcome(outcome_labels(prompt), searched))
