"""Live wire parsing for the stand-in: mixed key casing, each client message kind, bad input."""

from __future__ import annotations

import base64

import pytest

from streams.standin import wire


def test_keys_are_normalised_to_camel_case_at_every_depth() -> None:
    raw = {
        "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 300}},
        "aB": [{"x_y": 1}],
    }
    assert wire.normalise_keys(raw) == {
        "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 300}},
        "aB": [{"xY": 1}],
    }


def test_setup_as_google_genai_sends_it_is_understood() -> None:
    setup = {
        "model": "models/m",
        "systemInstruction": {"parts": [{"text": "Be nice. [script:c1]"}], "role": "user"},
        "sessionResumption": {"handle": "h-1"},
        "realtimeInputConfig": {
            "automatic_activity_detection": {"disabled": True, "silence_duration_ms": 250},
            "activity_handling": "NO_INTERRUPTION",
        },
    }
    [parsed] = wire.parse_client_message({"setup": setup})
    assert isinstance(parsed, wire.Setup)
    assert parsed.system_instruction == "Be nice. [script:c1]"
    assert (parsed.resumption_enabled, parsed.resume_handle) == (True, "h-1")
    assert (parsed.auto_vad, parsed.interrupts, parsed.silence_ms) == (False, False, 250)


def test_a_plain_setup_has_defaults() -> None:
    [parsed] = wire.parse_client_message({"setup": {"model": "models/m"}})
    assert isinstance(parsed, wire.Setup)
    assert (parsed.resumption_enabled, parsed.auto_vad, parsed.interrupts, parsed.silence_ms) == (
        False,
        True,
        True,
        None,
    )


@pytest.mark.parametrize("top", ["realtime_input", "realtimeInput"])
def test_audio_in_either_casing_and_either_base64_alphabet(top: str) -> None:
    pcm = bytes([0xFB, 0xFF, 0x3E, 0x00])
    for data in (base64.b64encode(pcm).decode(), base64.urlsafe_b64encode(pcm).decode()):
        blob = {"data": data, "mime_type": "audio/pcm;rate=16000"}
        assert wire.parse_client_message({top: {"audio": blob}}) == [wire.Audio(pcm=pcm, rate=16000)]


def test_activity_markers_text_and_stream_end() -> None:
    assert wire.parse_client_message({"realtime_input": {"activityStart": {}}}) == [wire.ActivityStart()]
    assert wire.parse_client_message({"realtime_input": {"activityEnd": {}}}) == [wire.ActivityEnd()]
    assert wire.parse_client_message({"realtime_input": {"audioStreamEnd": True}}) == [wire.AudioStreamEnd()]
    assert wire.parse_client_message({"realtime_input": {"text": "hi"}}) == [wire.TextTurn(text="hi")]


def test_client_content_and_tool_response_in_either_casing() -> None:
    content = {"turns": [{"parts": [{"text": "hi"}], "role": "user"}], "turnComplete": True}
    assert wire.parse_client_message({"client_content": content}) == [wire.TextTurn(text="hi", complete=True)]
    response = {"id": "fc-1", "name": "f", "response": {"ok": 1}}
    for key in ("tool_response", "toolResponse"):
        parsed = wire.parse_client_message({key: {"function_responses": [response]}})
        assert parsed == [wire.ToolResponse(responses=(response,))]


@pytest.mark.parametrize(
    "message",
    [
        [],
        {},
        {"bogus": {}},
        {"realtime_input": "x"},
        {"realtime_input": {"audio": {"data": "!!", "mime_type": "audio/pcm;rate=16000"}}},
        {"realtime_input": {"audio": {"data": "AA==", "mime_type": "audio/pcm;rate=16000"}}},
        {"tool_response": {"function_responses": "x"}},
    ],
)
def test_bad_client_messages_are_refused_with_a_reason(message: object) -> None:
    with pytest.raises(wire.ClientMessageError):
        wire.parse_client_message(message)


def test_non_audio_media_is_ignored_not_refused() -> None:
    [parsed] = wire.parse_client_message(
        {"realtime_input": {"video": {"data": "", "mime_type": "image/jpeg"}}}
    )
    assert isinstance(parsed, wire.Ignored)


def test_server_messages_have_the_documented_shape() -> None:
    assert wire.go_away(50) == {"goAway": {"timeLeft": "50s"}}
    assert wire.turn_complete(7, 3)["usageMetadata"] == {
        "promptTokenCount": 7,
        "responseTokenCount": 3,
        "totalTokenCount": 10,
    }
    part = wire.audio_chunk(b"\x01\x00")["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
    assert part == {"mimeType": "audio/pcm;rate=24000", "data": "AQA="}
