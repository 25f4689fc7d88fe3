"""The stand-in's deterministic post-call summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.standin.summary import HEADER, choose_outcome, outcome_labels, stem, summarise

ROOT = Path(__file__).resolve().parents[3]

PROMPT = """Summarise the call.
Possible outcomes: [booked | cancelled | transferred | unresolved]
Transcript:
caller: I need to cancel my reservation. It is for Friday.
agent: No problem! I have cancelled it.
"""


def test_first_sentence_per_turn_and_a_keyword_outcome() -> None:
    summary = summarise(PROMPT)
    assert summary.lines == (("caller", "I need to cancel my reservation."), ("agent", "No problem!"))
    assert summary.outcome == "cancelled"
    assert summary.as_text().splitlines() == [
        HEADER,
        "caller: I need to cancel my reservation.",
        "agent: No problem!",
        "Outcome: cancelled",
    ]


# Three labels hit once each: the tie goes to the one listed first, whatever order a set would give.
TIED = """Possible outcomes: [transferred | booked | cancelled | unresolved]
Transcript:
caller: Book me in for Friday, or cancel Saturday. Then transfer me.
"""


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            PROMPT,
            [HEADER, "caller: I need to cancel my reservation.", "agent: No problem!", "Outcome: cancelled"],
        ),
        (TIED, [HEADER, "caller: Book me in for Friday, or cancel Saturday.", "Outcome: transferred"]),
    ],
)
def test_the_same_prompt_gives_the_same_summary_whatever_the_hash_seed(
    prompt: str, expected: list[str]
) -> None:
    # Each interpreter gets its own string hash seed: nothing in the summary may follow set order.
    script = "import sys; from streams.standin.summary import summarise; " + (
        "print(summarise(sys.stdin.read()).as_text())"
    )
    for seed in ("0", "1", "2", "3", "4242"):
        env = os.environ | {"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        ran = subprocess.run(
            [sys.executable, "-c", script], input=prompt, env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == expected, f"PYTHONHASHSEED={seed}"


def test_outcome_labels_are_read_in_order_with_a_default() -> None:
    assert outcome_labels("Outcomes: a, b_c, 'd'") == ("a", "b_c", "d")
    assert outcome_labels("nothing here") == ("resolved", "unresolved")


def test_no_keyword_hit_picks_the_last_label_and_ties_the_first() -> None:
    assert choose_outcome(("booked", "other"), "hello there") == "other"
    assert choose_outcome(("booked", "transferred"), "book it then transfer me") == "booked"
    assert [stem(w) for w in ("booked", "cancelled", "transferred", "calls")] == [
        "book",
        "cancel",
        "transfer",
        "call",
    ]


def test_json_form_and_a_prompt_without_transcript_lines() -> None:
    summary = summarise("The caller was transferred to sales.\nOutcomes: booked, transferred")
    assert summary.lines == ()
    assert summary.as_json() == {"summary": "", "outcome": "transferred", "standin": True}
