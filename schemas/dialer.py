"""Outbound calling: the dialer's inputs (keyed by agent), its event log, and post-call records.

Three topics carry these records:

* ``voice.dialer.requests.v1`` (key: agent_id): everything the dialer decides on. Commands
  from the API (``PlaceCall``, campaigns) and facts its telephony adapter reports back
  (``CallDialled``, ``CallDialFailed``), so every decision can be replayed from the log.
* ``voice.dialer.events.v1`` (key: agent_id): what the dialer decided: queued, rejected,
  attempts and their outcomes, operators' hang-ups of attempts not answered yet,
  answering-machine decisions, campaign changes.
* ``voice.postcall.events.v1`` (key: call_id): what happened after a call ended: the
  summary (or why there is none) and every webhook delivery attempt.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from schemas.envelope import AgentEnvelope, CallEnvelope, doc
from schemas.ids import AgentId, CallId, CampaignId

AVRO_NAMESPACE = "voice.dialer.v1"

REJECTION_REASONS = (
    "invalid_number",
    "do_not_call",
    "unknown_agent",
    "archived_agent",
    "duplicate",
    "deadline_passed",
    "cancelled",
    "campaign_cancelled",
    "not_cancellable",
    "unknown_campaign",
)
ATTEMPT_OUTCOMES = (
    "answered",
    "machine",
    "busy",
    "no_answer",
    "failed",
    "canceled",
    "error",
    "lost",
    "not_dialled",
)
REQUEST_OUTCOMES = ("completed", "machine", "failed", "cancelled", "deadline_passed")
MACHINE_ACTIONS = ("hang_up", "leave_message", "ignore")
WEBHOOK_EVENTS = ("call.started", "call.ended")


def _one_of(values: tuple[str, ...]) -> str:
    return "One of: " + ", ".join(values) + "."


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceCall(AgentEnvelope):
    """Command: dial a number with this agent, within the time window given."""

    to_number: str = field(metadata=doc("E.164."))
    from_number: str | None = field(default=None, metadata=doc("E.164; None = one of the agent's numbers."))
    variables: dict[str, str] = field(
        default_factory=dict, metadata=doc("Per-call variables for the prompt template.")
    )
    priority: int = field(default=0, metadata=doc("Higher is dialled first."))
    not_before: datetime | None = None
    deadline: datetime | None = field(default=None, metadata=doc("Give up if not placed by then."))
    idempotency_key: str = field(metadata=doc("Same key, same request: placed at most once."))
    call_id: CallId = field(metadata=doc("Call id the placed call will carry."))
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelPlaceCall(AgentEnvelope):
    """Command: withdraw a PlaceCall not yet dialled; identify it by either key."""

    idempotency_key: str | None = None
    call_id: CallId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDialled(AgentEnvelope):
    """Fact from the telephony adapter: the provider accepted an attempt and gave it a call SID."""

    call_id: CallId = field(metadata=doc("The request's call id (the first attempt's call)."))
    attempt_call_id: CallId = field(metadata=doc("Call id of this attempt's call."))
    attempt: int = field(metadata=doc("1 for the first attempt."))
    twilio_call_sid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDialFailed(AgentEnvelope):
    """Fact from the telephony adapter: the provider refused or could not be reached."""

    call_id: CallId
    attempt_call_id: CallId
    attempt: int
    error_code: int | None = field(default=None, metadata=doc("Twilio's error code, if any."))
    http_status: int | None = None
    message: str
    retryable: bool = field(metadata=doc("Whether trying again later may succeed."))
    not_dialled: bool = field(
        default=False,
        metadata=doc(
            "The dialer's last check refused the dial before Twilio was asked (the calling window"
            " closed or the deadline passed since it was decided): nothing was placed."
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateCampaign(AgentEnvelope):
    """Command: a campaign of PlaceCall requests (sent after it) for one agent."""

    campaign_id: CampaignId
    name: str
    total: int = field(metadata=doc("Number of accepted rows; each becomes one PlaceCall."))


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseCampaign(AgentEnvelope):
    """Command: dial no more of the campaign's queued numbers until resumed."""

    campaign_id: CampaignId


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeCampaign(AgentEnvelope):
    """Command: dial the campaign's queued numbers again."""

    campaign_id: CampaignId


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelCampaign(AgentEnvelope):
    """Command: drop the campaign's queued numbers; calls already placed go on."""

    campaign_id: CampaignId


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRequestQueued(AgentEnvelope):
    """A PlaceCall was accepted and waits for a free slot, its time window and its turn.

    It carries the whole request, so the dialer's state is a fold of its own event log.
    """

    call_id: CallId
    idempotency_key: str
    to_number: str
    from_number: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    priority: int
    not_before: datetime | None = None
    deadline: datetime | None = None
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialerRequestRejected(AgentEnvelope):
    """A dialer command was refused; the reason is part of the log."""

    command_type: str = field(metadata=doc("Avro full name of the rejected command."))
    call_id: CallId | None = None
    idempotency_key: str | None = None
    campaign_id: CampaignId | None = None
    reason: str = field(metadata=doc(_one_of(REJECTION_REASONS)))
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAttemptStarted(AgentEnvelope):
    """The dialer took a slot and is dialling; the attempt's CallReceived goes to call inputs."""

    call_id: CallId
    attempt_call_id: CallId
    attempt: int
    to_number: str
    from_number: str
    agent_version: int
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAttemptRecorded(AgentEnvelope):
    """How one attempt went; a retry, if any, is due at retry_at."""

    call_id: CallId
    attempt_call_id: CallId
    attempt: int
    outcome: str = field(
        metadata=doc(
            _one_of(ATTEMPT_OUTCOMES)
            + " not_dialled: refused by the dialer's last check before the dial; it does not count"
            " against the request's maximum attempts."
        )
    )
    twilio_call_sid: str | None = None
    error_code: int | None = field(default=None, metadata=doc("Twilio's error code, if any."))
    detail: str | None = None
    retry_at: datetime | None = field(default=None, metadata=doc("None: no further attempt."))
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAttemptHangUpNoted(AgentEnvelope):
    """An operator ended the call of an attempt nobody has answered yet: the dialer cancels it at
    Twilio (once it knows the call's sid), and the attempt is not retried.

    The attempt keeps its slot until its call ends, recorded ``canceled``; a dial refused after
    this is ``canceled`` too. Written so that a dialer rebuilt from its log still knows.
    """

    call_id: CallId = field(metadata=doc("The request's call id (the first attempt's call)."))
    attempt_call_id: CallId = field(metadata=doc("Call id of the attempt being cancelled."))
    attempt: int = field(metadata=doc("1 for the first attempt."))
    ended_call_id: CallId = field(
        metadata=doc(
            "The call the operator ended: attempt_call_id, or an earlier attempt's call when the"
            " dialer read the hang-up once the retry was dialling (the retry is cancelled instead)."
        )
    )
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRequestCompleted(AgentEnvelope):
    """A PlaceCall is finished: its last attempt's call ended, or it gave up."""

    call_id: CallId
    attempts: int = field(metadata=doc("Attempts started, those not dialled included."))
    outcome: str = field(metadata=doc(_one_of(REQUEST_OUTCOMES)))
    answered: bool
    campaign_id: CampaignId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineAnswerHandled(AgentEnvelope):
    """An answering machine took the call; the agent's policy decided what happens.

    ``leave_message``: the session worker owning the call speaks ``voicemail_message`` after
    the beep and hangs up. ``hang_up``: the dialer hangs up through the telephony adapter.
    """

    call_id: CallId
    attempt_call_id: CallId
    twilio_call_sid: str | None = None
    answered_by: str = field(metadata=doc("Twilio's AnsweredBy."))
    action: str = field(metadata=doc(_one_of(MACHINE_ACTIONS)))
    voicemail_message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignCreated(AgentEnvelope):
    """A campaign exists; its numbers arrive as PlaceCall requests."""

    campaign_id: CampaignId
    name: str
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignPaused(AgentEnvelope):
    """The campaign's queued numbers wait until it is resumed."""

    campaign_id: CampaignId


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignResumed(AgentEnvelope):
    """The campaign's queued numbers are dialled again."""

    campaign_id: CampaignId


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignCancelled(AgentEnvelope):
    """The campaign's queued numbers were dropped."""

    campaign_id: CampaignId
    dropped: int = field(metadata=doc("Queued requests withdrawn."))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummarized(CallEnvelope):
    """The model summarised a finished call and labelled its outcome from the agent's list."""

    agent_id: AgentId
    summary: str
    outcome_label: str | None = field(default=None, metadata=doc("One of the agent's outcome labels."))
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummaryFailed(CallEnvelope):
    """The model gave no usable summary of a finished call in any attempt; the worker gave up."""

    agent_id: AgentId
    reason: str = field(metadata=doc("What went wrong in the last attempt."))
    attempts: int = field(metadata=doc("How many times the model was asked."))
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDeliveryAttempted(CallEnvelope):
    """One attempt to deliver a call webhook; seq counts attempts of this delivery."""

    agent_id: AgentId
    delivery_id: str = field(metadata=doc("Same for every attempt of one event to one URL."))
    url: str
    event_type: str = field(metadata=doc(_one_of(WEBHOOK_EVENTS)))
    attempt: int
    status_code: int | None = None
    error: str | None = None
    succeeded: bool
    next_attempt_at: datetime | None = field(default=None, metadata=doc("None: no further attempt."))


DialerRequest: TypeAlias = (
    PlaceCall
    | CancelPlaceCall
    | CallDialled
    | CallDialFailed
    | CreateCampaign
    | PauseCampaign
    | ResumeCampaign
    | CancelCampaign
)
DialerEvent: TypeAlias = (
    CallRequestQueued
    | DialerRequestRejected
    | CallAttemptStarted
    | CallAttemptRecorded
    | CallAttemptHangUpNoted
    | CallRequestCompleted
    | MachineAnswerHandled
    | CampaignCreated
    | CampaignPaused
    | CampaignResumed
    | CampaignCancelled
)
PostCallEvent: TypeAlias = CallSummarized | CallSummaryFailed | WebhookDeliveryAttempted
