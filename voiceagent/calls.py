"""`voiceagent call ...`: place a simulated call against the running platform; time-travel a call."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.settings import Settings
from voiceagent.devfile import DevAddresses, DevFileError
from voiceagent.simulate import Outcome, SimulationError, simulate_call
from voiceagent.timeline import event_summary, load_events, parse_instant, to_json, travel

call_app = typer.Typer(help="Simulated calls and call history.", no_args_is_help=True)
console = Console()
CALL_FAILED = 3
"""`call simulate`'s exit code when the call was placed and ended in CallFailed."""


@call_app.command("simulate")
def simulate(
    agent: str = typer.Option(..., "--agent", help="agent id or name (the dev stack seeds 'demo')"),
    say: list[str] = typer.Option([], "--say", help="what the simulated phone says, one turn per --say"),
    wav: Path | None = typer.Option(None, "--wav", help="a WAV file to play instead of --say"),
    outbound: bool = typer.Option(
        False,
        "--outbound",
        help="have the agent call the simulator instead: the API places the call and the offline "
        "Twilio stand-in of `voiceagent dev` (no Twilio account configured) rings it",
    ),
    save_audio: Path | None = typer.Option(
        None, "--save-audio", help="save a stereo WAV: the simulator left, what it heard right"
    ),
    reply_timeout: float = typer.Option(30.0, help="seconds to wait for each agent reply"),
    transfer_to: str | None = typer.Option(
        None,
        "--transfer-to",
        help="have the offline Gemini stand-in answer the last --say by transferring the call to "
        "this number (transfer_call), one of the agent's transfer_numbers (the demo agent's is "
        "+15550123456); the offline Twilio stand-in carries the transfer out",
    ),
) -> None:
    """Call an agent (or, with --outbound, be called by one) over the real Twilio Media Streams
    protocol, speaking each --say after the agent's previous reply, and print what happens.

    Exit codes: 0 the call ended (CallEnded); 1 it could not be simulated (an unreadable --wav, an
    unknown agent, the platform not running or not answering in time); 2 the command line was
    refused (a usage error); 3 the call was placed and failed (CallFailed, such as transfer_failed)."""
    settings = Settings()
    if save_audio is not None and not save_audio.parent.is_dir():
        # Said now, not after the whole call, whose audio would then be lost.
        console.print(f"[red]--save-audio: the directory {save_audio.parent} does not exist[/]")
        raise typer.Exit(1)
    try:
        addresses = DevAddresses.read(settings.data_dir.resolve())
        outcome = asyncio.run(
            simulate_call(
                addresses,
                console,
                agent=agent,
                turns=say or _default_turns(wav, outbound),
                wav=wav,
                outbound=outbound,
                reply_timeout_s=reply_timeout,
                transfer_to=transfer_to,
                # The broker dev.json names, read with the configured security (SASL, TLS).
                kafka=settings.kafka.model_copy(update={"bootstrap": addresses.bootstrap}),
            )
        )
    except (SimulationError, FileNotFoundError, DevFileError) as err:
        console.print(f"[red]{escape(str(err))}[/]")  # it may quote a body: [x] is no markup
        raise typer.Exit(1) from err
    if save_audio is not None:
        try:
            outcome.save(save_audio)
        except OSError as err:
            console.print(f"[red]could not save the audio to {save_audio}: {err.strerror or err}[/]")
            raise typer.Exit(1) from err
        console.print(f"saved what the caller heard to {save_audio} (left: caller, right: agent)")
    _report(outcome)


def _report(outcome: Outcome) -> None:
    """How the call ended: green if it ended, red and exit code CALL_FAILED if it failed."""
    transferred = f"; the call was transferred to {outcome.transferred_to}" if outcome.transferred_to else ""
    if outcome.failed:  # scripts and CI must not read a failed call as a good one
        console.print(f"[red]call {outcome.call_id} failed: {outcome.end}{transferred}[/]")
        raise typer.Exit(CALL_FAILED)
    console.print(f"[green]call {outcome.call_id} finished: {outcome.end}{transferred}[/]")


def _default_turns(wav: Path | None, outbound: bool) -> list[str]:
    if wav is not None:
        return []
    return ["Hello, who is calling?"] if outbound else ["Hello, is anybody there?"]


def _instant(at: str | None) -> datetime | None:
    """`--at` as an aware time, or a usage error that says what a valid one looks like."""
    if at is None:
        return None
    try:
        return parse_instant(at)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--at") from None


@call_app.command("timeline")
def timeline(
    call_id: str = typer.Argument(..., help="the call id"),
    at: str | None = typer.Option(
        None,
        "--at",
        help="fold the state as of this instant: ISO 8601, with an offset (+01:00, Z) or else in UTC",
    ),
    seq: int | None = typer.Option(None, "--seq", help="fold the state up to this event seq"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """A call's events, and its state at any point, folded by the same code the workers run."""
    instant = _instant(at)  # a bad --at is said before the log is read
    settings = Settings()
    if settings.kafka.bootstrap is None:
        try:
            settings = settings.model_copy(
                update={
                    "kafka": settings.kafka.model_copy(
                        update={"bootstrap": DevAddresses.read(settings.data_dir.resolve()).bootstrap}
                    )
                }
            )
        except (FileNotFoundError, DevFileError) as err:
            console.print(f"[red]{err}; or set VOICE_KAFKA__BOOTSTRAP[/]")
            raise typer.Exit(2) from err
    events = asyncio.run(load_events(settings.kafka, call_id))
    if not events:
        console.print(f"[red]no events for call {call_id} on the log[/]")
        raise typer.Exit(1)
    chosen = travel(events, at=instant, seq=seq)
    if as_json:
        print(to_json(chosen))
        return
    table = Table(title=f"call {call_id}: {len(chosen.events)} of {len(events)} events")
    for column in ("seq", "at", "event", "details"):
        table.add_column(column)
    for event in chosen.events:
        table.add_row(
            str(event.seq),
            event.occurred_at.isoformat(timespec="milliseconds"),
            type(event).__name__,
            event_summary(event),
        )
    console.print(table)
    state = chosen.state
    if state is not None:
        console.print(f"state after seq {state.seq}: [bold]{state.status.value}[/] "
                      f"(agent {state.agent_id} v{state.agent_version}, interruptions {state.interruptions}, "
                      f"tool calls {state.tool_calls}, end reason {state.end_reason})")  # fmt: skip
