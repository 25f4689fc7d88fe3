"""Dialer settings (VOICE_DIALER__*): limits and back-off that are not part of an agent yet."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import SETTINGS_SOURCES
from streams.dialer.decider import DialerOptions
from streams.dialer.policy import RetryPolicy


class DialerSettings(BaseSettings):
    """Read from VOICE_DIALER__* beside the platform's Settings; built only in entry points."""

    model_config = SettingsConfigDict(**SETTINGS_SOURCES, env_prefix="VOICE_DIALER__")

    app_id: str = "voice-dialer"
    tick_interval_s: float = 0.2
    tenant_max_concurrent_calls: int = 50
    max_attempts: int = 3
    backoff_base_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_cap_s: float = 900.0
    do_not_call: list[str] = Field(default_factory=list, description="E.164 numbers never to dial")
    do_not_call_file: Path | None = Field(default=None, description="one E.164 number per line")
    max_dials_in_flight: int = 200
    unknown_agent_grace_s: float = 10.0

    def options(self, default_from_number: str) -> DialerOptions:
        numbers = set(self.do_not_call)
        if self.do_not_call_file is not None:
            lines = self.do_not_call_file.read_text(encoding="utf-8").splitlines()
            numbers |= {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        return DialerOptions(
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                base_s=self.backoff_base_s,
                factor=self.backoff_factor,
                cap_s=self.backoff_cap_s,
            ),
            tenant_max_concurrent_calls=self.tenant_max_concurrent_calls,
            do_not_call=frozenset(numbers),
            default_from_number=default_from_number,
            unknown_agent_grace_s=self.unknown_agent_grace_s,
        )
