"""`voiceagent call simulate` with bad input: a message and an exit code, never a traceback, and
said before a call is placed where it can be."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from voiceagent import calls, cli
from voiceagent.caller import Heard
from voiceagent.devfile import DevAddresses
from voiceagent.simulate import Outcome, SimulationError, _read_wav


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dev_json(data_dir: Path) -> None:
    port = _closed_port()  # a dev.json left by a platform that did not stop cleanly
    DevAddresses(
        bootstrap=f"127.0.0.1:{port}",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        api_url=f"http://127.0.0.1:{port}",
        api_key="k",
        edge_url=f"http://127.0.0.1:{port}",
        twilio_auth_token="t",
        standin_control_url=None,
        demo_agent_id=None,
        demo_number="+15550000000",
    ).write(data_dir)


def _main(monkeypatch: pytest.MonkeyPatch, data_dir: Path, *argv: str) -> int | str | None:
    monkeypatch.setenv("VOICE_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "argv", ["voiceagent", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code


def test_simulate_with_the_platform_stopped_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dev_json(tmp_path)
    assert _main(monkeypatch, tmp_path, "call", "simulate", "--agent", "demo") not in (0, None)


@pytest.mark.parametrize(
    "content",
    [b"ID3\x04\x00 this is an mp3, not a wav file", b"hi", b"RIFF\x10\x00\x00\x00WAVEfmt "],
    ids=["mp3", "tiny", "truncated-riff"],
)
def test_a_non_wav_file_is_a_simulation_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "caller.wav"
    path.write_bytes(content)
    with pytest.raises(SimulationError):
        _read_wav(path)


def test_a_directory_given_as_wav_is_a_simulation_error(tmp_path: Path) -> None:
    with pytest.raises(SimulationError):
        _read_wav(tmp_path)


def test_an_unwritable_save_audio_path_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _dev_json(tmp_path)
    placed: list[object] = []

    async def finished_call(*args: object, **kwargs: object) -> Outcome:  # the call itself went fine
        placed.append(kwargs)
        return Outcome("call-1", "CallEnded (caller_hung_up)", Heard())

    monkeypatch.setattr(calls, "simulate_call", finished_call)
    out = tmp_path / "no" / "such" / "dir" / "out.wav"
    # Refused before the call: its audio would be lost at the end otherwise. (Refused after it,
    # when the save fails, the exit code is the same: only the call not placed tells them apart.)
    code = _main(monkeypatch, tmp_path, "call", "simulate", "--agent", "demo", "--save-audio", str(out))
    assert code not in (0, None)
    assert placed == []
    said = "".join(capsys.readouterr().out.split())
    assert "--save-audio:thedirectory" in said, said
    assert "doesnotexist" in said, said
