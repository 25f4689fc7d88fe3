"""`call simulate` reads the call's events with the configured Kafka security, and says why it cannot."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from rich.console import Console

from infra.settings import KafkaSettings
from tests.support.dev_addresses import dev_addresses
from voiceagent import calls, cli, simulate
from voiceagent.caller import Heard
from voiceagent.simulate import CallWatch, Outcome, SimulationError, simulate_call


def test_simulate_reads_the_events_with_the_configured_security(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, it built KafkaSettings(bootstrap=...) and dropped SASL and TLS: against a secured
    # broker the follower never connected and the command died of a bare TimeoutError.
    dev_addresses(bootstrap="broker.example:9093").write(tmp_path)
    monkeypatch.setenv("VOICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VOICE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VOICE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("VOICE_KAFKA__SASL_USERNAME", "voice")
    monkeypatch.setenv("VOICE_KAFKA__SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("VOICE_KAFKA__SSL_CAFILE", "/etc/ssl/broker-ca.pem")
    placed: list[dict[str, Any]] = []

    async def finished_call(*_args: object, **kwargs: Any) -> Outcome:
        placed.append(kwargs)
        return Outcome("call-1", "CallEnded (caller_hung_up)", Heard())

    monkeypatch.setattr(calls, "simulate_call", finished_call)
    monkeypatch.setattr(sys, "argv", ["voiceagent", "call", "simulate", "--agent", "demo"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code in (0, None)
    kafka: KafkaSettings = placed[0]["kafka"]
    assert kafka.bootstrap == "broker.example:9093"  # where dev.json says the broker is
    assert kafka.security_protocol == "SASL_SSL"
    assert (kafka.sasl_mechanism, kafka.sasl_username) == ("SCRAM-SHA-512", "voice")
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == "s3cret"
    assert kafka.ssl_cafile == Path("/etc/ssl/broker-ca.pem")


def test_a_follower_that_fails_is_a_simulation_error_naming_its_error_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(_self: CallWatch, _kafka: KafkaSettings, _ready: asyncio.Event) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('broker.example', 9093)]")

    monkeypatch.setattr(CallWatch, "follow", refused)
    monkeypatch.setattr(simulate, "_agent", lambda *_: {"agent_id": "a-1", "config": {}})
    started = time.monotonic()
    with pytest.raises(SimulationError) as failed:
        asyncio.run(
            simulate_call(
                dev_addresses(),
                Console(record=True),
                agent="demo",
                turns=[],
                wav=None,
                outbound=False,
                reply_timeout_s=1,
                kafka=KafkaSettings(bootstrap="broker.example:9093"),
            )
        )
    assert time.monotonic() - started < 5  # not the 15 s wait for a follower that is gone
    said = str(failed.value)
    assert "KafkaConnectionError" in said
    assert "Unable to bootstrap" in said
    assert "broker.example:9093" in said


def test_a_follower_that_never_gets_going_is_a_simulation_error() -> None:
    async def stuck() -> None:
        await asyncio.sleep(30)

    async def wait() -> None:
        follower = asyncio.create_task(stuck())
        try:
            await simulate.until_following(
                follower, asyncio.Event(), KafkaSettings(bootstrap="b:1"), timeout_s=0.1
            )
        finally:
            follower.cancel()

    with pytest.raises(SimulationError, match=r"within 0\.1s"):
        asyncio.run(wait())
