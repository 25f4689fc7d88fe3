"""Stand-in scripts: validation, how a session finds its script, turn selection, tool-result templating."""

from __future__ import annotations

import pytest

from streams.sessions.live_config import greeting_prompt, voicemail_prompt
from streams.standin.script import (
    EXHAUSTED_REPLY,
    OFFLINE_REPLY,
    Script,
    ScriptError,
    ToolCallSpec,
    Turn,
    fill_reply,
    greeting_request,
    parse_script,
    script_key,
    scripted_turn,
    verbatim_request,
)


def test_a_full_script_parses() -> None:
    script = parse_script(
        {
            "greeting": "Hello",
            "turns": [
                {"caller": "book", "reply": "Sure"},
                {"caller": "hours?", "tool_calls": [{"name": "search_knowledge", "args": {"q": "h"}}]},
                {"caller": "bye", "fail_with": 1011},
            ],
        }
    )
    assert script.greeting == "Hello"
    assert script.turns[1].tool_calls == (ToolCallSpec(name="search_knowledge", args={"q": "h"}),)
    assert script.turns[1].after_tool_reply == "{result}"
    assert script.turns[2].fail_with == 1011


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "object"),
        ({"turns": {}}, "turns"),
        ({"turns": [{"caller": 1}]}, "turns[0]"),
        ({"turns": [{"tool_calls": [{"args": {}}]}]}, "turns[0].tool_calls[0]"),
        ({"turns": [{"tool_calls": [{"name": "f", "args": []}]}]}, "args"),
        ({"turns": [{"fail_with": 99}]}, "fail_with"),
        ({"greeting": 5}, "greeting"),
        ({"tool_timeout_s": 0}, "tool_timeout_s"),
    ],
)
def test_bad_scripts_name_the_field(body: object, field: str) -> None:
    with pytest.raises(ScriptError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_script(body)


def test_the_header_wins_over_the_prompt_marker_and_the_last_marker_counts() -> None:
    prompt = "You are an agent.\n[script:old] text [script:call-42]"
    assert script_key({}, prompt) == "call-42"
    assert script_key({"x-standin-script": "from-header"}, prompt) == "from-header"
    assert script_key({}, "no marker here") is None


def test_turns_are_played_in_order_then_a_labelled_fallback() -> None:
    script = Script(turns=(Turn(caller="a", reply="1"),))
    assert scripted_turn(script, 0).reply == "1"
    assert scripted_turn(script, 1).reply == EXHAUSTED_REPLY
    assert scripted_turn(None, 0).reply == OFFLINE_REPLY
    assert "offline stand-in" in OFFLINE_REPLY
    assert "offline stand-in" in EXHAUSTED_REPLY


def test_tool_results_fill_the_template() -> None:
    assert (
        fill_reply("Open {result}.", [{"id": "1", "response": {"result": "until ten"}}]) == "Open until ten."
    )
    assert fill_reply("{result}", [{"response": {"output": {"n": 2}}}]) == '{"n": 2}'
    assert fill_reply("Got {result} {other}", [{"response": {"a": 1}}]) == 'Got {"a": 1} {other}'


def test_a_say_exactly_prompt_is_answered_word_for_word() -> None:
    message = "Hi, this is Acme: call us back at 10:30."
    assert verbatim_request(voicemail_prompt(message)) == message
    assert verbatim_request("Please SAY EXACTLY THE FOLLOWING TEXT:  Bye.\n") == "Bye."
    assert verbatim_request("Greet the caller: Hello") is None
    assert verbatim_request("Say exactly the following text:   ") is None


def test_a_greeting_prompt_names_the_greeting_to_say() -> None:
    assert greeting_request(greeting_prompt("Thanks for calling Acme.")) == "Thanks for calling Acme."
    assert greeting_request("  greet the caller:\n Hello there. ") == "Hello there."
    assert greeting_request("Greet the caller:   ") is None
    assert greeting_request("Greet the caller.") is None  # no greeting named: the labelled reply
    assert greeting_request(voicemail_prompt("Greet the caller: no")) is None
