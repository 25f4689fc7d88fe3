"""The stand-in's deterministic post-call summary."""

from __future__ import annotations

from streams.standin.summary import HEADER, choose_outcome, outcome_labels, stem, summarise

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


def test_the_same_prompt_gives_the_same_summary() -> None:
    assert summarise(PROMPT) == summarise(PROMPT)


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
