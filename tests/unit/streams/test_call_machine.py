"""Given/when/then tests of every call state transition, rejection, late fact and timer."""

import dataclasses
from datetime import timedelta

import pytest
from call_scenario import (
    LIMITS,
    OTHER_TENANT,
    SID,
    agent_finished,
    agent_started,
    at,
    call_ended,
    call_failed,
    caller_started,
    caller_stopped,
    check_in,
    command_rejected,
    dtmf,
    end_call,
    given,
    handle_updated,
    hang_up_requested,
    history,
    history_after,
    hung_up,
    interrupted,
    live,
    make,
    mark,
    received,
    recording,
    session_closed,
    session_opened,
    session_resumed,
    stream_started,
    stream_stopped,
    telephony,
    tick,
    tool_completed,
    tool_failed,
    tool_requested,
    transcript,
    transfer,
    usage,
    voicemail,
)

from schemas.call_media import TranscriptSegment
from schemas.calls import CallEvent, CallFact, CallInput
from streams.calls.machine import fold
from streams.calls.state import TRANSCRIPT_TAIL_CHARS, TRANSCRIPT_TAIL_SEGMENTS, CallLimits, MediaStream
from streams.calls.state import CallStatus as S


class TestSetUp:
    def test_an_inbound_call_is_received(self) -> None:
        given().when(received(0)).then_appended().then_state(
            status=S.RECEIVED, seq=1, started_at=at(0), agent_version=3, answered_at=None
        )

    def test_the_calls_prompt_variables_are_kept_for_its_sessions(self) -> None:
        variables = {"customer_name": "Ann"}
        given().when(received(0, variables=variables)).then_appended().then_state(variables=variables)

    def test_an_outbound_call_is_dialing(self) -> None:
        given().when(received(0, "outbound")).then_appended().then_state(status=S.DIALING)

    def test_a_repeated_call_received_is_ignored(self) -> None:
        given(received(0)).when(received(1)).then_nothing()

    @pytest.mark.parametrize("early", [stream_started(1), caller_started(1), end_call(1), tick(500)])
    def test_nothing_is_recorded_before_the_call_exists(self, early: CallInput) -> None:
        given().when(early).then_nothing()

    def test_an_outbound_call_rings(self) -> None:
        given(received(0, "outbound")).when(telephony(1, "ringing")).then_appended().then_state(
            status=S.RINGING
        )

    def test_ringing_does_not_move_an_inbound_call_back(self) -> None:
        given(*live()).when(telephony(5, "ringing")).then_appended().then_state(status=S.IN_CONVERSATION)

    @pytest.mark.parametrize("status", ["queued", "initiated"])
    def test_early_statuses_are_recorded_without_effect(self, status: str) -> None:
        given(received(0, "outbound")).when(telephony(1, status)).then_appended().then_state(status=S.DIALING)

    def test_an_answered_outbound_call_is_connected(self) -> None:
        given(received(0, "outbound"), telephony(1, "ringing")).when(
            telephony(4, "in-progress")
        ).then_appended().then_state(status=S.CONNECTED, answered_at=at(4), last_activity_at=at(4))

    def test_the_media_stream_connects_an_inbound_call_and_names_its_bridge(self) -> None:
        bridge = MediaStream(
            stream_sid=SID, edge_id="edge-a", bridge_url="ws://edge-a/bridge", bridge_token="tok-1",
            token_expires_at=at(3600),
        )  # fmt: skip
        given(received(0)).when(stream_started(1)).then_appended().then_state(
            status=S.CONNECTED, answered_at=at(1), stream=bridge, twilio_call_sid="CA-1"
        )

    def test_the_media_stream_of_an_answered_call_keeps_its_answer_time(self) -> None:
        given(received(0, "outbound"), telephony(4, "in-progress")).when(
            stream_started(5)
        ).then_appended().then_state(status=S.CONNECTED, answered_at=at(4))

    @pytest.mark.parametrize(
        ("status", "reason"), [("busy", "busy"), ("no-answer", "no_answer"), ("canceled", "canceled")]
    )
    def test_an_unanswered_outbound_call_ends(self, status: str, reason: str) -> None:
        fact = telephony(30, status)
        given(received(0, "outbound"), telephony(1, "ringing")).when(fact).then(
            fact, call_ended(reason, None)
        ).then_state(status=S.ENDED, end_reason=reason, ended_at=at(30))

    def test_a_telephony_failure_fails_the_call(self) -> None:
        fact = telephony(2, "failed", sip=503)
        given(received(0, "outbound")).when(fact).then(
            fact, call_failed("telephony_failed", "sip 503")
        ).then_state(status=S.FAILED, end_reason="telephony_failed")

    @pytest.mark.parametrize(
        ("log", "status"),
        [
            ([received(0)], "received"),
            ([received(0, "outbound")], "dialing"),
            ([received(0, "outbound"), telephony(1, "ringing")], "ringing"),
        ],
        ids=["inbound", "dialing", "ringing"],
    )
    def test_a_call_that_never_connects_fails_at_the_setup_timeout(
        self, log: list[CallFact], status: str
    ) -> None:
        given(*log).when(tick(89)).then_nothing()
        given(*log).when(tick(90)).then(
            call_failed("setup_timeout", f"not answered within 90s (status {status})")
        ).then_state(status=S.FAILED, ended_at=at(90))


class TestConversation:
    @pytest.mark.parametrize("first", [caller_started(3), agent_started(3), transcript(3, "agent"), dtmf(3)])
    def test_the_first_sign_of_talk_starts_the_conversation(self, first: CallFact) -> None:
        given(received(0), stream_started(1)).when(first).then_appended().then_state(
            status=S.IN_CONVERSATION, last_activity_at=at(3)
        )

    @pytest.mark.parametrize("fact", [session_opened(3), mark(3), usage(3)])
    def test_other_facts_do_not_start_the_conversation(self, fact: CallFact) -> None:
        given(received(0), stream_started(1)).when(fact).then_appended().then_state(
            status=S.CONNECTED, last_activity_at=at(1)
        )

    def test_speech_is_tracked_while_it_lasts(self) -> None:
        given(*live()).when(caller_started(5)).then_state(caller_speaking=True)
        given(*live(caller_started(5))).when(caller_stopped(6)).then_state(caller_speaking=False)
        given(*live()).when(agent_started(5, "u2")).then_state(agent_utterance_id="u2")
        given(*live(agent_started(5, "u2"))).when(agent_finished(7, "u2")).then_state(
            agent_utterance_id=None, last_activity_at=at(7)
        )

    def test_the_agents_utterances_are_counted_for_a_session_taking_over(self) -> None:
        given(*live()).when(agent_started(5, "u2")).then_state(agent_utterances=2)

    def test_the_highest_transcript_segment_is_kept_for_a_session_taking_over(self) -> None:
        given(*live()).when(transcript(5, index=4)).then_state(transcript_segments=4)
        # Segments of two sessions can interleave on the inputs topic: the count never falls.
        given(*live(transcript(5, index=4))).when(transcript(6, index=2)).then_state(transcript_segments=4)

    def test_the_latest_transcript_is_kept_bounded_for_a_session_taking_over_fresh(self) -> None:
        def said(t: float, speaker: str, text: str, final: bool = True) -> TranscriptSegment:
            return make(
                TranscriptSegment,
                t,
                speaker=speaker,
                text=text,
                final=final,
                start_ms=0,
                segment_index=int(t),
            )

        given(*live(said(5, "caller", "Where is my order?"))).when(
            said(6, "agent", " It shipped. ")
        ).then_state(transcript_tail=("caller: Where is my order?", "agent: It shipped."))
        # Not final, or nothing said: not kept.
        given(*live()).when(said(5, "caller", "Where is", final=False)).then_state(transcript_tail=())
        given(*live()).when(said(5, "caller", "  ")).then_state(transcript_tail=())
        # The last TRANSCRIPT_TAIL_SEGMENTS, each cut to TRANSCRIPT_TAIL_CHARS: the table record stays small.
        many = [said(10 + i, "caller", f"line {i}") for i in range(TRANSCRIPT_TAIL_SEGMENTS)]
        kept = [f"caller: line {i}" for i in range(1, TRANSCRIPT_TAIL_SEGMENTS)]
        expected = (*kept, "agent: " + "x" * (TRANSCRIPT_TAIL_CHARS - len("agent: ")))
        given(*live(*many)).when(said(100, "agent", "x" * 1000)).then_state(transcript_tail=expected)

    def test_activity_reported_late_does_not_move_the_silence_timer_back(self) -> None:
        # Producers race: the edge's caller fact can land after the worker's later agent fact.
        given(*live()).when(caller_stopped(1.5)).then_appended().then_state(last_activity_at=at(3))

    def test_the_end_of_an_older_utterance_keeps_the_current_one(self) -> None:
        given(*live(agent_started(5, "u2"))).when(agent_finished(6, "u1")).then_appended().then_state(
            agent_utterance_id="u2"
        )

    def test_a_barge_in_is_counted_and_stops_the_utterance(self) -> None:
        given(*live(agent_started(5, "u2"))).when(interrupted(6, "u2")).then_appended().then_state(
            interruptions=1, agent_utterance_id=None, last_interrupted_utterance_id="u2", agent_heard=True
        )

    def test_the_caller_has_heard_the_agent_once_a_mark_comes_back(self) -> None:
        given(*live(agent_started(5, "u1"))).when(agent_finished(6, "u1")).then_state(agent_heard=False)
        given(*live(agent_started(5, "u1"))).when(mark(7)).then_appended().then_state(agent_heard=True)
        given(*live(mark(7))).when(mark(8)).then_appended().then_state(agent_heard=True)

    def test_a_barge_in_reported_by_both_edge_and_model_is_recorded_once(self) -> None:
        log = live(agent_started(5, "u2"), interrupted(6, "u2", "edge_vad"))
        given(*log).when(interrupted(6.2, "u2", "model")).then_nothing()
        given(*log).when(interrupted(9, "u3", "model")).then_appended().then_state(interruptions=2)

    def test_tool_calls_are_tracked_until_they_finish(self) -> None:
        given(*live()).when(tool_requested(5, "tc1")).then_appended().then_state(
            tools_in_flight=("tc1",), tool_calls=1
        )
        given(*live(tool_requested(5, "tc1"), tool_requested(5, "tc2"))).when(
            tool_completed(6, "tc1")
        ).then_appended().then_state(tools_in_flight=("tc2",), tool_calls=2)
        given(*live(tool_requested(5, "tc1"))).when(tool_failed(6, "tc1")).then_state(tools_in_flight=())

    def test_the_gemini_session_and_its_latest_resumption_handle_are_kept(self) -> None:
        given(*live()).when(session_opened(3)).then_appended().then_state(session_open=True)
        given(*live(session_opened(3))).when(handle_updated(4, "h2")).then_state(resumption_handle="h2")
        given(*live(session_opened(3), handle_updated(4, "h2"))).when(session_closed(5)).then_state(
            session_open=False, resumption_handle="h2"
        )
        given(*live(session_closed(5, "h3"))).when(session_resumed(6, "h3")).then_state(
            session_open=True, resumption_handle="h3"
        )

    def test_a_fresh_session_forgets_the_handle_of_the_one_before(self) -> None:
        # A pre-warmed session stopped before the stream left "h1"; the stream's session starts
        # fresh, and until it issues a handle of its own there is nothing to resume.
        earlier = (session_opened(3), handle_updated(4, "h1"), session_closed(5))
        given(*live(*earlier)).when(session_opened(6)).then_state(session_open=True, resumption_handle=None)

    def test_a_fresh_restart_reports_no_handle_not_an_empty_one(self) -> None:
        # GeminiSessionResumed(fresh_session=True) carries "": kept as is, a takeover worker
        # "resumed" the empty handle, with no transcript and no greeting.
        earlier = (session_opened(3), handle_updated(4, "h1"), session_closed(5, "h1"))
        given(*live(*earlier)).when(session_resumed(6, "")).then_state(
            session_open=True, resumption_handle=None
        )

    @pytest.mark.parametrize(
        "reopened", [session_opened(7), session_resumed(7, "h1")], ids=["opened", "resumed"]
    )
    def test_a_new_session_clears_the_tools_and_speech_of_the_one_before(self, reopened: CallEvent) -> None:
        # A killed worker never records its tool's end nor its utterance's: left in flight, they
        # kept the silence timer off for the rest of the call.
        earlier = (session_opened(3), agent_started(4), tool_requested(5, "tc1"), session_closed(6, "h1"))
        given(*live(*earlier)).when(reopened).then_state(tools_in_flight=(), agent_utterance_id=None)


class TestTransfer:
    def test_the_agent_transfers_a_connected_call(self) -> None:
        given(*live()).when(transfer(5)).then_appended().then_state(
            status=S.TRANSFERRING, transfer_target="+15550009", settling_since=at(5)
        )

    @pytest.mark.parametrize("log", [history(received(0)), live(hang_up_requested(4))])
    def test_a_transfer_outside_a_connected_call_is_ignored(self, log: list[CallEvent]) -> None:
        given(*log).when(transfer(5)).then_nothing()

    def test_the_stream_stopping_completes_the_transfer(self) -> None:
        fact = stream_stopped(8)
        given(*live(transfer(5))).when(fact).then(fact, call_ended("transferred", "agent")).then_state(
            status=S.ENDED, end_reason="transferred"
        )

    def test_a_transfer_the_carrier_refused_fails_the_call(self) -> None:
        # The edge hangs up then: recorded as transferred, the caller would have been "moved".
        fact = stream_stopped(8, reason="transfer_failed")
        given(*live(transfer(5))).when(fact).then(
            fact, call_failed("transfer_failed", "the carrier refused the transfer")
        ).then_state(status=S.FAILED)

    def test_an_unconfirmed_transfer_ends_at_the_settle_timeout(self) -> None:
        given(*live(transfer(5))).when(tick(34)).then_nothing()
        given(*live(transfer(5))).when(tick(35)).then(call_ended("transferred", "agent"))


class TestHangUp:
    def test_a_hang_up_request_makes_the_call_end_with_its_reason(self) -> None:
        given(*live()).when(hang_up_requested(5)).then_appended().then_state(
            status=S.ENDING, end_reason="agent_hung_up", ended_by="agent", settling_since=at(5)
        )
        fact = stream_stopped(6)
        given(*live(hang_up_requested(5))).when(fact).then(
            fact, call_ended("agent_hung_up", "agent")
        ).then_state(status=S.ENDED, ended_at=at(6), end_reason="agent_hung_up")

    @pytest.mark.parametrize(
        ("by", "expected"),
        [("caller", "caller_hung_up"), ("agent", "agent_hung_up"), ("operator", "completed")],
    )
    def test_a_free_text_reason_maps_to_the_requester(self, by: str, expected: str) -> None:
        given(*live()).when(hang_up_requested(5, by, "pressed 9")).then_state(end_reason=expected)

    def test_a_hang_up_by_an_unknown_requester_ends_the_call_without_naming_one(self) -> None:
        log = live(hang_up_requested(5, "robot", "beep"))
        given(*log).when(stream_stopped(6)).then(stream_stopped(6), call_ended("completed", None))

    def test_a_second_hang_up_request_is_ignored(self) -> None:
        given(*live(hang_up_requested(5))).when(hang_up_requested(6, "caller", "x")).then_nothing()

    def test_twilio_completing_the_call_confirms_the_hang_up(self) -> None:
        fact = telephony(7, "completed")
        given(*live(hang_up_requested(5))).when(fact).then(fact, call_ended("agent_hung_up", "agent"))

    def test_an_unconfirmed_hang_up_ends_at_the_settle_timeout(self) -> None:
        given(*live(hang_up_requested(5))).when(tick(35)).then(call_ended("agent_hung_up", "agent"))

    def test_a_stream_stopped_by_twilio_means_the_caller_hung_up(self) -> None:
        fact = stream_stopped(9)
        given(*live()).when(fact).then(fact, call_ended("caller_hung_up", "caller")).then_state(
            status=S.ENDED, ended_by="caller"
        )

    def test_an_edge_hang_up_that_overtakes_the_request_means_the_agent_hung_up(self) -> None:
        fact = stream_stopped(9, "hangup")
        given(*live()).when(fact).then(fact, call_ended("agent_hung_up", "agent")).then_state(
            status=S.ENDED, ended_by="agent"
        )

    def test_twilio_completing_a_live_call_means_the_caller_hung_up(self) -> None:
        fact = telephony(9, "completed")
        given(*live()).when(fact).then(fact, call_ended("caller_hung_up", "caller"))

    @pytest.mark.parametrize("reason", ["socket_closed", "edge_shutdown", "error"])
    def test_a_lost_media_stream_fails_the_call(self, reason: str) -> None:
        fact = stream_stopped(9, reason)
        given(*live()).when(fact).then(fact, call_failed("media_stream_lost", reason)).then_state(
            status=S.FAILED
        )

    def test_a_stream_the_edge_ended_for_want_of_a_worker_fails_the_call_as_no_agent(self) -> None:
        fact = stream_stopped(9, "no_agent")
        given(*live()).when(fact).then(
            fact, call_failed("no_agent", "no session worker served the call's audio")
        ).then_state(status=S.FAILED)

    def test_the_end_of_a_stream_the_call_no_longer_uses_changes_nothing(self) -> None:
        given(*live()).when(stream_stopped(9, sid="MZ-old")).then_appended().then_state(
            status=S.IN_CONVERSATION
        )


class TestVoicemail:
    def test_a_voicemail_request_is_recorded_for_the_session(self) -> None:
        given(*history(received(0, "outbound"), telephony(1, "in-progress"))).when(
            voicemail(2, "Call us back.")
        ).then_appended().then_state(voicemail_message="Call us back.", status=S.CONNECTED)

    def test_a_voicemail_request_before_the_stream_is_kept_for_it(self) -> None:
        given(*history(received(0, "outbound"))).when(voicemail(1)).then_appended().then_state(
            voicemail_message="Please call us back.", status=S.DIALING
        )

    def test_a_second_voicemail_request_is_ignored(self) -> None:
        given(*live(voicemail(4, "first"))).when(voicemail(5, "second")).then_nothing()

    @pytest.mark.parametrize("log", [live(hang_up_requested(4)), live(transfer(4))])
    def test_a_voicemail_request_while_the_call_is_going_is_ignored(self, log: list[CallEvent]) -> None:
        given(*log).when(voicemail(5)).then_nothing()

    def test_the_agent_hanging_up_after_the_message_ends_the_call_as_a_voicemail(self) -> None:
        log = live(voicemail(4), hang_up_requested(9, "agent", "voicemail"))
        fact = stream_stopped(10, "hangup")
        given(*log).when(fact).then(fact, call_ended("voicemail", "agent")).then_state(
            status=S.ENDED, end_reason="voicemail", ended_by="agent", voicemail_message="Please call us back."
        )


class TestEndCall:
    def test_end_call_asks_for_a_hang_up(self) -> None:
        command = end_call(5, "operator", "wrong number")
        given(*live()).when(command).then(hung_up("operator", "wrong number")).then_state(
            status=S.ENDING, end_reason="completed", ended_by="operator"
        )

    def test_end_call_before_the_answer_is_accepted(self) -> None:
        given(received(0, "outbound")).when(end_call(1)).then(hung_up("operator", "operator ended it"))

    @pytest.mark.parametrize(
        ("log", "reason"),
        [
            (live(hang_up_requested(5)), "call_already_ending"),
            (live(stream_stopped(5)), "call_already_ended"),
            (live(stream_stopped(5, "error")), "call_already_ended"),
        ],
    )
    def test_end_call_on_a_call_that_is_going_is_rejected(self, log: list[CallEvent], reason: str) -> None:
        command = end_call(9)
        given(*log).when(command).then(command_rejected(command, reason)).then_state(interruptions=0)

    def test_end_call_from_an_unknown_requester_is_rejected(self) -> None:
        command = end_call(9, by="robot")
        given(*live()).when(command).then(command_rejected(command, "unknown_requester")).then_state(
            status=S.IN_CONVERSATION
        )

    def test_end_call_from_another_tenant_is_rejected(self) -> None:
        command = end_call(9, tenant=OTHER_TENANT)
        given(*live()).when(command).then(command_rejected(command, "tenant_mismatch"))


class TestTimers:
    def test_the_call_is_hung_up_at_its_maximum_duration_from_the_answer(self) -> None:
        log = live(*(caller_stopped(t) for t in range(10, 600, 15)))
        given(*log).when(tick(600.9)).then_nothing()
        given(*log).when(tick(601)).then(hung_up("system", "max_duration")).then_state(
            status=S.ENDING, end_reason="max_duration", ended_by="system"
        )
        fact = stream_stopped(602)
        ending = history_after(log, tick(601))
        given(*log, *ending).when(fact).then(fact, call_ended("max_duration", "system"))

    def test_silence_earns_a_check_in_then_a_hang_up(self) -> None:
        # Last sign of life: the agent finished speaking at t=3.
        given(*live()).when(tick(22.9)).then_nothing()
        outcome = (
            given(*live())
            .when(tick(23))
            .then(check_in(5, 20))
            .then_state(silence_checked_in=True, last_activity_at=at(23), tool_calls=0, tools_in_flight=())
        )
        checked = [*live(), *outcome.events]
        given(*checked).when(tick(42)).then_nothing()
        given(*checked).when(tick(43)).then(hung_up("system", "silence_timeout"))

    def test_the_check_in_spoken_by_the_agent_does_not_reset_the_check_in(self) -> None:
        checked = [*live(), *given(*live()).when(tick(23)).events]
        spoken = history_after(checked, agent_started(24, "u9"), agent_finished(26, "u9"))
        given(*checked, *spoken).when(tick(46)).then(hung_up("system", "silence_timeout"))

    def test_the_caller_answering_the_check_in_earns_a_new_one_later(self) -> None:
        checked = [*live(), *given(*live()).when(tick(23)).events]
        answered = history_after(checked, caller_started(25), caller_stopped(26))
        given(*checked, *answered).when(tick(46)).then(check_in(8, 20))

    @pytest.mark.parametrize(
        "busy", [[caller_started(4)], [agent_started(4, "u2")], [tool_requested(4, "tc1")]]
    )
    def test_no_silence_while_someone_speaks_or_a_tool_runs(self, busy: list[CallInput]) -> None:
        given(*live(*busy)).when(tick(100)).then_nothing()

    def test_silence_does_not_run_before_the_call_is_connected_or_while_ending(self) -> None:
        given(received(0)).when(tick(60)).then_nothing()
        given(*live(hang_up_requested(4))).when(tick(25)).then_nothing()

    def test_limits_of_zero_switch_timers_off(self) -> None:
        off = CallLimits(max_duration_s=0, silence_timeout_s=0, setup_timeout_s=0, settle_timeout_s=0)
        for log in (history(received(0)), live(), live(hang_up_requested(4))):
            given(*log, limits=off).when(tick(10_000)).then_nothing()

    def test_limits_come_from_the_agent_version(self) -> None:
        from schemas.agents import AgentConfig

        config = AgentConfig(
            system_prompt="p", voice="v", language="en-US", model="m", max_duration_s=300,
            silence_timeout_s=12, record_calls=False, max_concurrent_calls=1,
            answering_machine_policy="ignore", timezone="UTC",
        )  # fmt: skip
        limits = CallLimits.from_config(config)
        assert (limits.max_duration_s, limits.silence_timeout_s) == (300, 12)
        assert (limits.setup_timeout_s, limits.settle_timeout_s) == (LIMITS.setup_timeout_s, 30)

    def test_time_running_backwards_fires_nothing(self) -> None:
        given(*live()).when(tick(-100)).then_nothing()


class TestAfterTheEnd:
    @pytest.mark.parametrize(
        "late", [recording(20), usage(20), telephony(20, "completed"), session_closed(20), transfer(20)]
    )
    def test_late_facts_are_kept_in_the_log_and_change_nothing(self, late: CallFact) -> None:
        ended = live(stream_stopped(10))
        before = fold(ended)
        assert before is not None
        outcome = given(*ended).when(late).then_appended()
        assert outcome.after == dataclasses.replace(before, seq=before.seq + 1)

    def test_ticks_after_the_end_produce_nothing(self) -> None:
        given(*live(stream_stopped(10))).when(tick(10_000)).then_nothing()

    def test_facts_from_another_tenant_are_ignored(self) -> None:
        given(*live()).when(make(type(caller_started(5)), 5, tenant=OTHER_TENANT, stream_ms=1)).then_nothing()
        given(*live()).when(tick(10_000, tenant=OTHER_TENANT)).then_nothing()


class TestFold:
    def test_an_empty_log_is_no_call(self) -> None:
        assert fold([]) is None

    def test_a_redelivered_event_changes_nothing(self) -> None:
        log = live(caller_started(5), interrupted(6, "u1"))
        assert fold([*log, *log]) == fold(log)

    def test_a_log_that_does_not_start_with_call_received_is_refused(self) -> None:
        with pytest.raises(ValueError, match="first event is MediaStreamStarted"):
            fold(live()[1:])

    def test_the_timeline_is_folded(self) -> None:
        state = fold(live(caller_started(5), caller_stopped(6), hang_up_requested(7), stream_stopped(8)))
        assert state is not None
        assert (state.status, state.started_at, state.answered_at, state.ended_at) == (
            S.ENDED, at(0), at(1), at(8),
        )  # fmt: skip
        assert state.ended_at is not None
        assert state.answered_at is not None
        assert state.ended_at - state.answered_at == timedelta(seconds=7)
