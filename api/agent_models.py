"""Request and response bodies of /api/agents (XCreate / XPublic), and the config's wire mapping."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.agents import AgentConfig, ToolSpec

# Versions are PostgreSQL integers; a larger number can only be a guess, so it is refused as input.
MAX_VERSION = 2**31 - 1


class ToolSpecIn(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, Any] | str = Field(default_factory=lambda: {"type": "object", "properties": {}})
    webhook_url: str | None = Field(
        default=None, description="POSTed the arguments, HMAC-signed, when the model calls the tool"
    )
    timeout_ms: int = Field(default=5000, description="limit on the whole webhook request")


class AgentConfigIn(BaseModel):
    """A full agent configuration; every publish stores one as a new immutable version."""

    system_prompt: str
    voice: str = "Puck"
    language: str = "en-US"
    model: str = "gemini-live-2.5-flash-preview"
    tools: list[ToolSpecIn] = []
    knowledge_base_ids: list[str] = []
    greeting: str | None = None
    max_duration_s: int = 1800
    silence_timeout_s: int = 30
    webhook_urls: list[str] = []
    phone_numbers: list[str] = []
    transfer_numbers: list[str] = Field(
        default=[],
        description="E.164 numbers transfer_call may transfer a call to; none: the agent cannot transfer",
    )
    record_calls: bool = True
    max_concurrent_calls: int = 10
    answering_machine_policy: str = "hang_up"
    voicemail_message: str | None = None
    calling_window: str | None = None
    timezone: str = "UTC"
    outcome_labels: list[str] = []

    def to_record(self) -> AgentConfig:
        values = self.model_dump()
        values["tools"] = tuple(
            ToolSpec(
                name=t.name,
                description=t.description,
                parameters_json=t.parameters if isinstance(t.parameters, str) else json.dumps(t.parameters),
                webhook_url=t.webhook_url,
                timeout_ms=t.timeout_ms,
            )
            for t in self.tools
        )
        for name in (
            "knowledge_base_ids",
            "webhook_urls",
            "phone_numbers",
            "transfer_numbers",
            "outcome_labels",
        ):
            values[name] = tuple(values[name])
        return AgentConfig(**values)


class AgentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    config: AgentConfigIn | None = None


class VersionCreate(BaseModel):
    config: AgentConfigIn
    expected_version: int | None = Field(
        default=None, ge=0, le=MAX_VERSION, description="instead of an If-Match header"
    )


class Rollback(BaseModel):
    to_version: int = Field(ge=1, le=MAX_VERSION)


class AgentPublic(BaseModel):
    agent_id: str
    name: str
    status: str
    current_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] | None = None


class AgentVersionPublic(BaseModel):
    agent_id: str
    version: int
    config: dict[str, Any]
    published_at: datetime


class AgentsPublic(BaseModel):
    items: list[AgentPublic]
    next_cursor: str | None


class Change(BaseModel):
    path: str
    before: Any
    after: Any


class AgentDiff(BaseModel):
    agent_id: str
    from_version: int
    to_version: int
    changes: list[Change]
