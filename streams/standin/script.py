"""What the stand-in "hears" and says, scripted per call (pure: parsing, matching, templating)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OFFLINE_REPLY = (
    "This is the offline stand-in for Gemini. No model is connected, so I cannot really help, "
    "but I can hear you and I am answering."
)
EXHAUSTED_REPLY = "This is the offline stand-in for Gemini. My script has no more turns."
TOOL_TIMEOUT_REPLY = "This is the offline stand-in for Gemini. The tool did not answer in time."
TEXT_REPLY = "Sorry about that. This is the offline stand-in for Gemini, answering a written prompt."
UNSCRIPTED_CALLER = "(offline stand-in: caller speech, not transcribed)"
SCRIPT_HEADER = "x-standin-script"
_MARKER = re.compile(r"\[script:([A-Za-z0-9_.:\-]+)\]")
_GREET = re.compile(r"\Agreet the caller:\s*(.+)\Z", re.IGNORECASE | re.DOTALL)
_SAY_EXACTLY = re.compile(r"say exactly the following text[^:\n]*:\s*(.+)\Z", re.IGNORECASE | re.DOTALL)


class ScriptError(ValueError):
    """A script body that cannot be used; the message says which field is wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallSpec:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One caller turn and the model's answer to it.

    `caller` is sent as the input transcription; with `tool_calls` the stand-in asks for them,
    waits for the tool responses and then says `after_tool_reply` (with `{result}` filled in);
    `fail_with` closes the connection with that code instead of answering.
    """

    caller: str
    reply: str = ""
    tool_calls: tuple[ToolCallSpec, ...] = ()
    after_tool_reply: str = "{result}"
    fail_with: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    turns: tuple[Turn, ...] = ()
    greeting: str | None = None
    tool_timeout_s: float = 30.0


def parse_script(body: Any) -> Script:
    """Validate a `PUT /scripts/{key}` body; raises ScriptError with the offending field."""
    if not isinstance(body, dict):
        raise ScriptError("a script must be a JSON object")
    turns = body.get("turns", [])
    if not isinstance(turns, list):
        raise ScriptError("turns must be a list")
    greeting = body.get("greeting")
    if greeting is not None and not isinstance(greeting, str):
        raise ScriptError("greeting must be a string")
    timeout = body.get("tool_timeout_s", 30.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ScriptError("tool_timeout_s must be a positive number")
    return Script(
        turns=tuple(_turn(t, i) for i, t in enumerate(turns)),
        greeting=greeting,
        tool_timeout_s=float(timeout),
    )


def _turn(raw: Any, index: int) -> Turn:
    where = f"turns[{index}]"
    if not isinstance(raw, dict):
        raise ScriptError(f"{where} must be an object")
    caller, reply = raw.get("caller", ""), raw.get("reply", "")
    after = raw.get("after_tool_reply", "{result}")
    if not all(isinstance(v, str) for v in (caller, reply, after)):
        raise ScriptError(f"{where}: caller, reply and after_tool_reply must be strings")
    calls = raw.get("tool_calls", [])
    if not isinstance(calls, list):
        raise ScriptError(f"{where}.tool_calls must be a list")
    fail_with = raw.get("fail_with")
    if fail_with is not None and (not isinstance(fail_with, int) or not 1000 <= fail_with <= 4999):
        raise ScriptError(f"{where}.fail_with must be a WebSocket close code")
    return Turn(
        caller=caller,
        reply=reply,
        tool_calls=tuple(_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)),
        after_tool_reply=after,
        fail_with=fail_with,
    )


def _tool_call(raw: Any, where: str) -> ToolCallSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ScriptError(f"{where} needs a non-empty name")
    args = raw.get("args", {})
    if not isinstance(args, dict):
        raise ScriptError(f"{where}.args must be an object")
    return ToolCallSpec(name=raw["name"], args=args)


def script_key(headers: dict[str, str], system_instruction: str) -> str | None:
    """The call key: the `x-standin-script` header, else a `[script:KEY]` marker in the prompt."""
    header = headers.get(SCRIPT_HEADER, "").strip()
    if header:
        return header
    found = _MARKER.findall(system_instruction)
    return found[-1] if found else None


PRIMING_MARKER = "the conversation so far:"
"""How a worker's fresh session is primed with the transcript (streams/sessions/live_config.py)."""


def verbatim_request(text: str) -> str | None:
    """The text a written prompt asks to be said word for word ("... say exactly the following
    text ...: <text>", as a voicemail is left), or None for any other prompt."""
    found = _SAY_EXACTLY.search(text)
    if found is None:
        return None
    return found.group(1).strip() or None


def greeting_request(text: str) -> str | None:
    """The greeting a written prompt asks the model to open the call with ("Greet the caller:
    <greeting>", as the session worker sends it), or None for any other prompt.

    A real model greets as asked; the stand-in does too when its script names no greeting of
    its own, so a call that opens before its script is known (pre-warm) is still greeted.
    """
    found = _GREET.search(text.strip())
    if found is None:
        return None
    return found.group(1).strip() or None


def primed_turns(system_instruction: str) -> int | None:
    """Caller turns already taken, when the prompt primes a fresh session with a transcript.

    A real model reads the transcript and carries on; the stand-in carries on in its script.
    """
    _head, found, tail = system_instruction.partition(PRIMING_MARKER)
    if not found:
        return None
    return sum(1 for line in tail.splitlines() if line.startswith("caller: "))


def scripted_turn(script: Script | None, index: int) -> Turn:
    """The turn the stand-in plays for the caller's `index`-th turn (0-based)."""
    if script is None:
        return Turn(caller=UNSCRIPTED_CALLER, reply=OFFLINE_REPLY)
    if index < len(script.turns):
        return script.turns[index]
    return Turn(caller=UNSCRIPTED_CALLER, reply=EXHAUSTED_REPLY)


def render_tool_result(responses: list[dict[str, Any]]) -> str:
    """What `{result}` becomes: a response's `result`/`output` value, else its JSON."""
    rendered = []
    for item in responses:
        response = item.get("response")
        if isinstance(response, dict):
            value = response.get("result", response.get("output", response))
        else:
            value = response
        rendered.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return " ".join(rendered)


def fill_reply(template: str, responses: list[dict[str, Any]]) -> str:
    """Fill `{result}` in an after-tool reply; any other braces are left as written."""
    return template.replace("{result}", render_tool_result(responses))
