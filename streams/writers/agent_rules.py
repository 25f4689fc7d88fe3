"""Validation of an agent configuration: pure, shared by the writer and the API (field-level messages)."""

from __future__ import annotations

import re
from zoneinfo import available_timezones

from schemas.agents import AMD_POLICIES, AgentConfig
from streams.sessions.live_config import END_CALL, SEARCH_KNOWLEDGE, TRANSFER_CALL
from streams.webhooks.destination import url_problem
from streams.writers.tool_schema import json_schema_problem

# Gemini Live prebuilt voices.
VOICES = frozenset(
    [
        "Zephyr",
        "Puck",
        "Charon",
        "Kore",
        "Fenrir",
        "Leda",
        "Orus",
        "Aoede",
        "Callirrhoe",
        "Autonoe",
        "Enceladus",
        "Iapetus",
        "Umbriel",
        "Algieba",
        "Despina",
        "Erinome",
        "Algenib",
        "Rasalgethi",
        "Laomedeia",
        "Achernar",
        "Alnilam",
        "Schedar",
        "Gacrux",
        "Pulcherrima",
        "Achird",
        "Zubenelgenubi",
        "Vindemiatrix",
        "Sadachbia",
        "Sadaltager",
        "Sulafat",
    ]
)
MAX_PROMPT_CHARS = 20_000
MAX_GREETING_CHARS = 1_000
MAX_TOOLS = 64
BUILTIN_TOOL_NAMES = frozenset({END_CALL, SEARCH_KNOWLEDGE, TRANSFER_CALL})
MIN_TOOL_TIMEOUT_MS = 100
MAX_TOOL_TIMEOUT_MS = 30_000  # a caller waits in silence meanwhile: half a minute is already long
MAX_DURATION_S = 4 * 60 * 60
MAX_TRANSFER_NUMBERS = 20  # a handful of desks; each is declared to the model in every call
# Matched with fullmatch: "$" would also accept a trailing newline.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # [0-9]: \d also matches other scripts' digits
BCP47 = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
WINDOW = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", re.ASCII)

FieldError = tuple[str, str]


def config_errors(config: AgentConfig) -> list[FieldError]:
    """Every problem with ``config`` as (field path, message); empty when it is valid."""
    errors: list[FieldError] = []
    if not config.system_prompt.strip():
        errors.append(("system_prompt", "must not be empty"))
    if len(config.system_prompt) > MAX_PROMPT_CHARS:
        errors.append(("system_prompt", f"at most {MAX_PROMPT_CHARS} characters"))
    if config.greeting is not None and len(config.greeting) > MAX_GREETING_CHARS:
        errors.append(("greeting", f"at most {MAX_GREETING_CHARS} characters"))
    if config.voice not in VOICES:
        errors.append(("voice", f"unknown voice {config.voice!r}"))
    if not BCP47.fullmatch(config.language):
        errors.append(("language", "must be a BCP-47 tag such as en-US"))
    if not config.model.strip():
        errors.append(("model", "must not be empty"))
    errors += _limit_errors(config)
    errors += _tool_errors(config)
    errors += [
        (f"phone_numbers[{i}]", "must be E.164")
        for i, n in enumerate(config.phone_numbers)
        if not E164.fullmatch(n)
    ]
    errors += _transfer_number_errors(config.transfer_numbers)
    errors += [
        (f"webhook_urls[{i}]", problem)
        for i, url in enumerate(config.webhook_urls)
        if (problem := url_problem(url)) is not None
    ]
    if config.calling_window is not None:
        errors += _window_errors(config.calling_window)
    if config.timezone not in _zones():
        errors.append(("timezone", f"unknown IANA zone {config.timezone!r}"))
    if config.answering_machine_policy not in AMD_POLICIES:
        errors.append(("answering_machine_policy", "one of: " + ", ".join(AMD_POLICIES)))
    return errors


def _window_errors(window: str) -> list[FieldError]:
    if not WINDOW.fullmatch(window):
        return [("calling_window", "must look like 09:00-18:00")]
    start, end = window.split("-")
    if start == end:
        # The dialer reads [start, end) with start == end as empty: every call would wait for ever.
        return [("calling_window", "start and end must differ; leave calling_window out to call at any hour")]
    return []


def _transfer_number_errors(numbers: tuple[str, ...]) -> list[FieldError]:
    """transfer_call dials only these (the edge's <Dial>): E.164 numbers, a few, each once."""
    errors: list[FieldError] = []
    if len(numbers) > MAX_TRANSFER_NUMBERS:
        errors.append(("transfer_numbers", f"at most {MAX_TRANSFER_NUMBERS} numbers"))
    seen: set[str] = set()
    for i, number in enumerate(numbers):
        if not E164.fullmatch(number):
            errors.append((f"transfer_numbers[{i}]", "must be E.164, such as +14155550100"))
        elif number in seen:
            errors.append((f"transfer_numbers[{i}]", f"{number} is listed twice"))
        seen.add(number)
    return errors


def _limit_errors(config: AgentConfig) -> list[FieldError]:
    errors: list[FieldError] = []
    if not 1 <= config.max_duration_s <= MAX_DURATION_S:
        errors.append(("max_duration_s", f"between 1 and {MAX_DURATION_S}"))
    if not 1 <= config.silence_timeout_s <= 600:
        errors.append(("silence_timeout_s", "between 1 and 600"))
    if not 1 <= config.max_concurrent_calls <= 1000:
        errors.append(("max_concurrent_calls", "between 1 and 1000"))
    return errors


def _tool_errors(config: AgentConfig) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(config.tools) > MAX_TOOLS:
        errors.append(("tools", f"at most {MAX_TOOLS} tools"))
    seen: set[str] = set()
    for i, tool in enumerate(config.tools):
        if not TOOL_NAME.fullmatch(tool.name):
            errors.append((f"tools[{i}].name", "letters, digits and _ only, not starting with a digit"))
        elif tool.name in seen:
            errors.append((f"tools[{i}].name", f"duplicate tool name {tool.name!r}"))
        seen.add(tool.name)
        problem = json_schema_problem(tool.parameters_json)
        if problem is not None:
            errors.append((f"tools[{i}].parameters_json", problem))
        if tool.webhook_url is not None and tool.name in BUILTIN_TOOL_NAMES:
            # The built-in wins on its name (live_config): the webhook would never be called.
            errors.append((f"tools[{i}].webhook_url", f"{tool.name!r} is a built-in tool; rename yours"))
        elif tool.webhook_url is not None and (problem := url_problem(tool.webhook_url)) is not None:
            errors.append((f"tools[{i}].webhook_url", problem))
        if not MIN_TOOL_TIMEOUT_MS <= tool.timeout_ms <= MAX_TOOL_TIMEOUT_MS:
            errors.append(
                (f"tools[{i}].timeout_ms", f"between {MIN_TOOL_TIMEOUT_MS} and {MAX_TOOL_TIMEOUT_MS}")
            )
    return errors


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES
