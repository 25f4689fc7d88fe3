"""Pure mapping from a pinned agent version to the Gemini Live session configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from schemas.agents import AgentConfig, ToolSpec
from streams.standin.script import SCRIPT_HEADER

SEARCH_KNOWLEDGE = "search_knowledge"
END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"

BUILTIN_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name=SEARCH_KNOWLEDGE,
        description="Search the agent's knowledge base; returns the most relevant passages.",
        parameters_json=json.dumps(
            {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
        ),
    ),
    ToolSpec(
        name=END_CALL,
        description="End the call politely once the conversation is over.",
        parameters_json=json.dumps({"type": "object", "properties": {"reason": {"type": "string"}}}),
    ),
)
"""Declared to every agent (search_knowledge only with a knowledge base). transfer_call is
declared per agent, only with transfer numbers: transfer_spec."""


def transfer_spec(numbers: tuple[str, ...]) -> ToolSpec:
    """transfer_call as declared to an agent that may transfer to ``numbers`` (not empty): the
    target is one of them (a JSON-schema enum, which Gemini's function declarations accept).

    The model may still send any target; the tool refuses one not listed (streams/sessions/tools.py).
    """
    return ToolSpec(
        name=TRANSFER_CALL,
        description="Transfer the caller to a human at one of these numbers: " + ", ".join(numbers) + ".",
        parameters_json=json.dumps(
            {
                "type": "object",
                "properties": {
                    "target": {
                        "type": "string",
                        "enum": list(numbers),
                        "description": "The number to transfer the call to.",
                    }
                },
                "required": ["target"],
            }
        ),
    )


DEFAULT_CONFIG = AgentConfig(
    system_prompt="You are a helpful phone agent. Keep answers short.",
    voice="Puck",
    language="en-US",
    model="gemini-live-2.5-flash-preview",
    max_duration_s=3600,
    silence_timeout_s=0,
    record_calls=False,
    max_concurrent_calls=10,
    answering_machine_policy="hang_up",
    timezone="UTC",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPlan:
    """Everything a session worker needs to open (or resume) one call's Live session."""

    call_id: str
    config: AgentConfig
    variables: dict[str, str] = field(default_factory=dict)
    resumption_handle: str | None = None
    transcript_so_far: tuple[str, ...] = ()
    """Set when a session must start fresh after resumption failed: primes the new session."""
    voicemail_message: str | None = None
    """Set when an answering machine took the call: the agent says this, then hangs up."""
    call_transcript: tuple[str, ...] = ()
    """The call's latest transcript when this session started (``CallState.transcript_tail``):
    with this session's own, it primes a fresh session of a call taken over."""
    segments_so_far: int = 0
    utterances_so_far: int = 0
    """Utterances the call's earlier sessions started: this one numbers its ids on from there."""
    """Transcript segments the call's earlier sessions recorded: this one numbers on from there."""


VOICEMAIL_PROMPT = (
    "An answering machine took the call and the beep has sounded. Leave a voicemail: "
    "say exactly the following text, word for word, and nothing else:\n"
)
"""The instruction before the message; the offline stand-in speaks the text after it verbatim."""


GREETING_PROMPT = "Greet the caller: "

SILENCE_CHECK_IN_PROMPT = (
    "The caller has been silent for a while. Check in briefly and kindly: ask whether they are "
    "still there and whether there is anything else you can help with."
)
"""What the model is asked when the call machine's silence timer decides a check-in."""


def greeting_prompt(greeting: str) -> str:
    """The written turn that asks the model to open the call with the agent's greeting."""
    return GREETING_PROMPT + greeting


def voicemail_prompt(message: str) -> str:
    """The written turn that asks the model to speak message as the voicemail."""
    return VOICEMAIL_PROMPT + message


def system_instruction(plan: SessionPlan) -> str:
    """The agent's prompt with per-call variables filled in.

    Unknown ``{placeholders}`` are left as written rather than failing the call.
    """
    prompt = plan.config.system_prompt
    for name, value in sorted(plan.variables.items()):
        prompt = prompt.replace("{" + name + "}", value)
    lines = [prompt, f"Speak {plan.config.language}."]
    if plan.transcript_so_far:
        lines.append("The call was interrupted by a technical problem; the conversation so far:")
        lines.extend(plan.transcript_so_far)
        lines.append("Carry on from there without greeting the caller again.")
    return "\n".join(lines)


def tool_declarations(config: AgentConfig) -> list[dict[str, Any]]:
    """Function declarations: the built-in tools plus the agent's own, built-ins winning on name.

    search_knowledge only with a knowledge base; transfer_call only with transfer numbers, and
    then only to them (a caller must not talk the model into dialling a number of their choice).
    """
    tools = {spec.name: spec for spec in (*config.tools, *BUILTIN_TOOLS)}
    if not config.knowledge_base_ids:
        tools.pop(SEARCH_KNOWLEDGE, None)
    tools.pop(TRANSFER_CALL, None)  # the built-in's name: never an agent's own tool
    if config.transfer_numbers:
        tools[TRANSFER_CALL] = transfer_spec(config.transfer_numbers)
    return [
        {"name": spec.name, "description": spec.description, "parameters": _schema(spec)}
        for spec in tools.values()
    ]


def live_connect_config(plan: SessionPlan) -> dict[str, Any]:
    """A dict that google-genai's LiveConnectConfig accepts (audio out, transcripts, resumption).

    The call id goes in a header, which the offline stand-in keys its scripts by
    (docs/gemini-standin.md) and Google's endpoint ignores; in the prompt, which it used to be,
    the real model read it as part of its instructions.
    """
    return {
        "http_options": {"headers": {SCRIPT_HEADER: plan.call_id}},
        "response_modalities": ["AUDIO"],
        "speech_config": {
            "voice_config": {"prebuilt_voice_config": {"voice_name": plan.config.voice}},
            "language_code": plan.config.language,
        },
        "system_instruction": system_instruction(plan),
        "tools": [{"function_declarations": tool_declarations(plan.config)}],
        "input_audio_transcription": {},
        "output_audio_transcription": {},
        "session_resumption": {"handle": plan.resumption_handle},
        "context_window_compression": {"trigger_tokens": 25600, "sliding_window": {"target_tokens": 12800}},
        "realtime_input_config": {
            "automatic_activity_detection": {"disabled": False, "silence_duration_ms": 500},
            "activity_handling": "START_OF_ACTIVITY_INTERRUPTS",
        },
    }


def _schema(spec: ToolSpec) -> dict[str, Any]:
    try:
        parsed = json.loads(spec.parameters_json) if spec.parameters_json else {}
    except json.JSONDecodeError:
        parsed = {}  # the API validates schemas on publish; never let one break a live call
    return parsed if isinstance(parsed, dict) else {}
