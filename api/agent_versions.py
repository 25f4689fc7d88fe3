"""Version rules of /api/agents: ETags, If-Match, and what changed between two versions."""

from __future__ import annotations

from typing import Any

from api.agent_models import MAX_VERSION
from api.problems import ProblemError


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None, body_version: int | None) -> int:
    """The version a write expects to replace: the body's, else the If-Match ETag's."""
    if body_version is not None:
        return body_version
    if if_match is None:
        raise ProblemError(428, "send If-Match with the current ETag (or expected_version in the body)")
    try:
        version = int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        version = -1
    if not 0 <= version <= MAX_VERSION:
        raise ProblemError(412, f"If-Match {if_match!r} is not an ETag this API issued")
    return version


def config_diff(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf-level differences between two JSON values, as (path, before, after)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after)):
            out += config_diff(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if before == after else [(path, before, after)]


def config_input(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored version's config in the shape AgentConfigIn accepts (for rollbacks)."""
    tools = [
        {
            "name": t["name"],
            "description": t["description"],
            "parameters": t["parameters_json"],
            # Versions stored before webhook tools existed have neither key.
            "webhook_url": t.get("webhook_url"),
            "timeout_ms": t.get("timeout_ms", 5000),
        }
        for t in stored.get("tools", [])
    ]
    return stored | {"tools": tools}
