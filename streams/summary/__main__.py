"""`python -m streams.summary`: summarise finished calls with Gemini (VOICE_GEMINI__*, VOICE_SUMMARY__*)."""

from __future__ import annotations

import asyncio
import logging

from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.process import stop_on_signals
from infra.settings import SETTINGS_SOURCES, Settings
from streams.standin.client import genai_client_for
from streams.summary.runner import SummaryWorker, genai_generate


class SummarySettings(BaseSettings):
    model_config = SettingsConfigDict(**SETTINGS_SOURCES, env_prefix="VOICE_SUMMARY__")

    group_id: str = "voice-summary"
    max_in_flight: int = 8


async def run() -> None:
    settings, options = Settings(), SummarySettings()
    logging.basicConfig(level=settings.log_level)
    gemini = settings.gemini
    client = genai_client_for(gemini)
    worker = SummaryWorker(
        settings,
        genai_generate(client, gemini.summary_model),
        model=gemini.summary_model,
        group_id=options.group_id,
        max_in_flight=options.max_in_flight,
    )
    stop = stop_on_signals()
    await worker.run(stop)


if __name__ == "__main__":
    asyncio.run(run())
