"""The stand-in driven by the real google-genai Live client, over TLS, with synthesised caller speech."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types
from standin_probe import audio, caller_speech, input_text, live, output_text, rms, send_audio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streams.sessions.live_config import greeting_prompt
from streams.standin.certs import client_ssl_context
from streams.standin.client import make_genai_client
from streams.standin.script import OFFLINE_REPLY, UNSCRIPTED_CALLER, parse_script
from streams.standin.server import StandIn, StandInSettings


def live_config(
    key: str | None, *, handle: str | None = None, by_header: bool = False
) -> types.LiveConnectConfig:
    prompt = "You are a restaurant's phone agent." + (f"\n[script:{key}]" if key and not by_header else "")
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=prompt,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        http_options=types.HttpOptions(headers={"x-standin-script": key}) if by_header and key else None,
    )


BOOKING = {
    "greeting": "Hello, you are talking to the offline stand-in of Bella's restaurant.",
    "turns": [
        {"caller": "I want to book a table", "reply": "Sure, for how many people?"},
        {
            "caller": "When are you open?",
            "reply": "Let me check.",
            "tool_calls": [{"name": "search_knowledge", "args": {"query": "opening hours"}}],
            "after_tool_reply": "We are open {result}.",
        },
        {"caller": "Thanks, bye", "reply": "Goodbye."},
    ],
}


async def test_a_caller_turn_is_answered_with_transcripts_and_real_speech(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    async with live(genai_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("I would like to book a table for tonight"))
        turn = await rx.turn()
    assert input_text(turn) == "I want to book a table"
    assert output_text(turn) == "Sure, for how many people?"
    pcm = audio(turn)
    assert len(pcm) / 48000 > 0.8  # seconds of 24 kHz PCM16
    assert rms(pcm) > 500  # speech, not silence
    mimes = {
        p.inline_data.mime_type
        for m in turn
        if m.server_content and m.server_content.model_turn
        for p in m.server_content.model_turn.parts or []
        if p.inline_data
    }
    assert mimes == {"audio/pcm;rate=24000"}
    assert turn[-1].usage_metadata is not None
    assert turn[-1].usage_metadata.total_token_count
    assert any(m.server_content and m.server_content.generation_complete for m in turn)
    [session_view] = standin.sessions(call_key)
    assert session_view["transcript"][-1] == {"role": "model", "text": "Sure, for how many people?"}


async def test_greeting_is_spoken_on_the_first_text_turn_and_key_can_come_from_a_header(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    config = live_config(call_key, by_header=True)
    async with live(genai_client, config) as (session, rx):
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="Greet the caller.")])
        )
        turn = await rx.turn()
    assert input_text(turn) == ""
    assert output_text(turn) == BOOKING["greeting"]
    assert rms(audio(turn)) > 500


async def test_tool_call_round_trip_speaks_the_tool_result(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    async with live(genai_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("book a table"))
        await rx.turn()
        await send_audio(session, caller_speech("when are you open"))
        before = await rx.until(lambda m: m.tool_call is not None)
        tool_call = before[-1].tool_call
        assert tool_call is not None
        [call] = tool_call.function_calls or []
        assert (call.name, call.args) == ("search_knowledge", {"query": "opening hours"})
        response = types.FunctionResponse(id=call.id, name=call.name, response={"result": "until ten"})
        await session.send_tool_response(function_responses=[response])
        after = await rx.turn()
    assert input_text(before) == "When are you open?"
    assert output_text(before) == "Let me check."
    assert output_text(after) == " We are open until ten."
    assert standin.sessions(call_key)[0]["tool_responses"][0]["response"] == {"result": "until ten"}


async def test_caller_speech_while_the_model_talks_interrupts_it(
    paced_standin: StandIn, paced_client: genai.Client, call_key: str
) -> None:
    long_reply = "Sure. We have tables at six, seven, eight and nine o'clock, on the terrace or inside."
    script = {
        "turns": [{"caller": "book a table", "reply": long_reply}, {"caller": "seven", "reply": "Done."}]
    }
    paced_standin.put_script(call_key, parse_script(script))
    async with live(paced_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("I want to book a table"))
        await rx.until(lambda m: m.data is not None)  # it has started talking
        await send_audio(session, caller_speech("seven please"), paced=True)
        interrupted = await rx.turn()
        answer = await rx.turn()
    flags = [m.server_content.interrupted for m in interrupted if m.server_content]
    assert True in flags
    assert not any(m.server_content and m.server_content.generation_complete for m in interrupted)
    assert len(output_text(interrupted)) < len(long_reply)
    assert input_text(answer) == "seven"
    assert output_text(answer) == "Done."


async def test_caller_speech_during_a_pending_tool_call_cancels_it(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script({"turns": BOOKING["turns"][1:]}))
    async with live(genai_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("when are you open"))
        asked = await rx.until(lambda m: m.tool_call is not None)
        await send_audio(session, caller_speech("never mind"))
        cancelled = await rx.turn()
    tool_call = asked[-1].tool_call
    assert tool_call is not None
    [call] = tool_call.function_calls or []
    [cancellation] = [m.tool_call_cancellation for m in cancelled if m.tool_call_cancellation]
    assert cancellation.ids == [call.id]
    assert any(m.server_content and m.server_content.interrupted for m in cancelled)


async def test_a_session_resumes_by_handle_after_a_disconnect(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    handles: list[str] = []
    async with live(genai_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("book a table"))
        await rx.turn()
        update = await rx.until(lambda m: m.session_resumption_update is not None)
        resumption = update[-1].session_resumption_update
        assert resumption is not None
        assert resumption.new_handle
        assert resumption.resumable
        handles.append(resumption.new_handle)
    # The connection is gone; a new one with the handle continues at the second scripted turn.
    async with live(genai_client, live_config(None, handle=handles[0])) as (again, rx):
        await send_audio(again, caller_speech("when are you open"))
        turn = await rx.until(lambda m: m.tool_call is not None)
    assert input_text(turn) == "When are you open?"
    [view] = standin.sessions(call_key)
    assert view["resumed"] == 1
    assert view["turn_index"] == 2


async def test_an_unknown_resumption_handle_is_refused(genai_client: genai.Client) -> None:
    with pytest.raises(errors.APIError) as caught:
        async with genai_client.aio.live.connect(
            model="gemini-live-test", config=live_config(None, handle="nope")
        ):
            pass
    assert caught.value.code == 1008


async def test_go_away_on_demand_then_the_connection_ends(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    async with live(genai_client, live_config(call_key)) as (_, rx):
        await rx.until(lambda m: m.session_resumption_update is not None)
        async with httpx.AsyncClient(base_url=standin.control_url) as control:
            reply = await control.post(f"/go-away/{call_key}", json={"time_left_s": 0.2})
        assert reply.json() == {"connections": 1}
        [go_away] = await rx.until(lambda m: m.go_away is not None)
        await asyncio.wait_for(rx.done.wait(), 5)
    assert go_away.go_away is not None
    assert go_away.go_away.time_left == "0.2s"
    assert rx.error is not None
    assert rx.error.code == 1000


async def test_go_away_comes_before_the_configured_connection_limit(standin_cert_dir, call_key: str) -> None:  # type: ignore[no-untyped-def]
    settings = StandInSettings(cert_dir=standin_cert_dir, pace=0.0, max_connection_s=0.6, go_away_lead_s=0.3)
    async with StandIn(settings) as limited:
        client = make_genai_client(limited.base_url, "k", limited.certs.ca_file)
        async with live(client, live_config(call_key)) as (_, rx):
            [*_, go_away] = await rx.until(lambda m: m.go_away is not None, within=3)
            await asyncio.wait_for(rx.done.wait(), 3)
    assert go_away.go_away is not None
    assert go_away.go_away.time_left == "0.3s"


async def test_close_1011_on_demand_surfaces_as_api_error(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    async with live(genai_client, live_config(call_key)) as (_, rx):
        await rx.until(lambda m: m.session_resumption_update is not None)
        async with httpx.AsyncClient(base_url=standin.control_url) as control:
            await control.post(f"/fail/{call_key}", json={"code": 1011, "reason": "Internal error"})
        await asyncio.wait_for(rx.done.wait(), 5)
    assert isinstance(rx.error, errors.APIError)
    assert rx.error.code == 1011
    assert "Internal error" in str(rx.error)


async def test_a_scripted_turn_can_fail_with_1007(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script({"turns": [{"caller": "hi", "fail_with": 1007}]}))
    async with live(genai_client, live_config(call_key)) as (session, rx):
        # The close lands while the caller's trailing silence is still being sent: google-genai's
        # send then raises websockets' ConnectionClosed (not APIError); receive() gets APIError.
        with contextlib.suppress(ConnectionClosed):
            await send_audio(session, caller_speech("hello there"))
        await asyncio.wait_for(rx.done.wait(), 5)
    assert rx.error is not None
    assert rx.error.code == 1007


async def test_without_a_script_it_gives_the_labelled_offline_reply(genai_client: genai.Client) -> None:
    async with live(genai_client, live_config(None)) as (session, rx):
        await send_audio(session, caller_speech("is anybody there"))
        turn = await rx.turn()
    assert input_text(turn) == UNSCRIPTED_CALLER
    assert output_text(turn) == OFFLINE_REPLY
    assert "offline stand-in" in output_text(turn)


async def test_the_control_endpoint_takes_scripts_and_refuses_bad_ones(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    async with httpx.AsyncClient(base_url=standin.control_url) as control:
        bad = await control.put(f"/scripts/{call_key}", json={"turns": [{"caller": 3}]})
        good = await control.put(
            f"/scripts/{call_key}", json={"turns": [{"caller": "hi", "reply": "Hello."}]}
        )
        sessions = await control.get("/sessions", params={"key": call_key})
        garbled = await control.post(f"/fail/{call_key}", content=b"{oops")
    assert bad.status_code == 422
    assert "turns[0]" in bad.json()["error"]
    assert good.status_code == 200
    assert sessions.json() == []
    assert garbled.status_code == 422
    async with live(genai_client, live_config(call_key)) as (session, rx):
        await send_audio(session, caller_speech("hi"))
        turn = await rx.turn()
    assert output_text(turn) == "Hello."


async def test_no_api_key_or_a_malformed_message_closes_the_socket(standin: StandIn) -> None:
    ctx = client_ssl_context(standin.certs.ca_file)
    url = standin.base_url.replace("https", "wss") + (
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    async with connect(url, ssl=ctx) as ws:
        await ws.send('{"setup": {"model": "models/x"}}')
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008
    async with connect(url, ssl=ctx, additional_headers={"x-goog-api-key": "k"}) as ws:
        await ws.send('{"setup": {"model": "models/x"}}')
        await ws.recv()
        await ws.send('{"realtime_input": {"audio": {"data": "!!", "mime_type": "audio/pcm;rate=16000"}}}')
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1007


async def test_an_injected_malformed_frame_reaches_the_client(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    standin.put_script(call_key, parse_script(BOOKING))
    async with genai_client.aio.live.connect(
        model="gemini-live-test", config=live_config(call_key)
    ) as session:
        assert await standin.inject(call_key, "{not json") == 1
        with pytest.raises(ValueError, match="Failed to parse response"):
            async for _ in session.receive():
                pass


async def test_live_connections_have_nagle_off(
    standin: StandIn, genai_client: genai.Client, call_key: str
) -> None:
    """With Nagle on, an audio chunk sent right after another message waited for the worker's
    next ACK (its next 20 ms caller frame): every answer reached the caller a frame late."""
    standin.put_script(call_key, parse_script(BOOKING))
    async with live(genai_client, live_config(call_key)) as (_session, _rx):
        server = standin._servers[0][0]  # the TLS port: Live and REST
        sockets = [c.transport.get_extra_info("socket") for c in server.server_state.connections]
        assert sockets, "the Live connection should be open"
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


async def test_latency_delays_setup_and_the_first_audio_and_an_unscripted_greeting_is_the_prompts(
    standin_cert_dir: Path,
) -> None:
    # `--latency-ms` stands in for a model's delays in the benches; the greeting named by the
    # worker's prompt is what a pre-warmed session gets before anyone scripted the call.
    settings = StandInSettings(cert_dir=standin_cert_dir, pace=0.0, silence_ms=300, latency_ms=300)
    async with StandIn(settings) as slow:
        client = make_genai_client(slow.base_url, "test-key", slow.certs.ca_file)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with live(client, live_config(None)) as (session, rx):
            setup_s = loop.time() - started  # connect() returns once setupComplete has come
            asked = loop.time()
            await session.send_client_content(
                turns=types.Content(
                    role="user", parts=[types.Part(text=greeting_prompt("Hello from Acme."))]
                ),
                turn_complete=True,
            )
            turn = await rx.until(lambda m: bool(m.data))
            first_audio_s = loop.time() - asked
            turn += await rx.until(lambda m: bool(m.server_content and m.server_content.turn_complete))
    assert setup_s >= 0.3
    assert first_audio_s >= 0.3
    assert output_text(turn) == "Hello from Acme."
