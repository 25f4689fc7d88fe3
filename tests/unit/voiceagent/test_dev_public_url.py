"""The public URL dev gives the edge follows the edge's port unless it was set."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from voiceagent.dev import _base_env

KEYS = {"api_key": "k", "twilio_auth_token": "t"}


def test_an_unset_public_url_follows_the_edges_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_EDGE__PORT", "28411")
    monkeypatch.delenv("VOICE_TWILIO__PUBLIC_BASE_URL", raising=False)
    assert _base_env(Settings(), KEYS)["VOICE_TWILIO__PUBLIC_BASE_URL"] == "http://127.0.0.1:28411"


def test_a_public_url_that_was_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_EDGE__PORT", "28411")
    monkeypatch.setenv("VOICE_TWILIO__PUBLIC_BASE_URL", "https://voice.example.com")
    assert _base_env(Settings(), KEYS)["VOICE_TWILIO__PUBLIC_BASE_URL"] == "https://voice.example.com"
