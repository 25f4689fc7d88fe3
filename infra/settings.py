"""The one configuration of the platform: pydantic-settings, prefix VOICE_, nested with __."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "staging", "prod"]
WireFormat = Literal["single-object", "confluent"]

# Where every VOICE_* settings class reads from, shared so none can drift: the environment,
# then .env in the working directory. An empty value counts as unset, as an operator means it:
# VOICE_DATABASE__URL= starts the embedded database instead of handing "" to SQLAlchemy.
SETTINGS_SOURCES = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
)

# A TCP port a service listens on (0, "any free port", would not be the address dev announces).
Port = Annotated[int, Field(ge=1, le=65535)]

# Values that ship in examples and docs; a real deployment must never run with them.
_KNOWN_DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "test", "dev"})


def is_placeholder_secret(value: str) -> bool:
    """Empty, or a value from examples and docs: refused outside dev and test."""
    return value.strip().lower() in _KNOWN_DEFAULT_SECRETS


class FetchWaits(BaseModel):
    """How long each service lets the broker hold an empty fetch, in ms: its latency against idle CPU.

    Every consumer asks the broker again as soon as a fetch comes back empty, so a short wait
    is a steady stream of requests even when nothing happens: measured on the embedded broker,
    one consumer of a 12-partition topic costs 6.4 % of a core idle at 10 ms (broker side; 2.8 %
    more in the consumer), 3.4 % at 20 ms, 1 % at 100-200 ms, while a record reaches it a median
    4 ms after it is produced at 10 ms and 6-11 ms at 100 ms (the broker answers a waiting fetch
    early, not always at once; ADR 10). The calls worker is on every call's path and keeps
    `streams.fetch_max_wait_ms`; these services are not, and a few tens of ms there cost no
    caller anything.
    """

    writers: int = Field(default=50, ge=1)  # an API command's events: the operator waits for them
    # The outbound call's first hop. Its agent events and requests are separate topics routed
    # into one stream; records fetched together may be routed in either order, so a request
    # placed right after its agent was archived can beat the archive (a known race, narrowed,
    # not closed, by a short wait).
    dialer: int = Field(default=20, ge=1)
    projections: int = Field(default=100, ge=1)  # read-model freshness
    webhooks: int = Field(default=200, ge=1)
    summary: int = Field(default=200, ge=1)
    archiver: int = Field(default=500, ge=1)
    # Each session worker's view of the agents (pinned versions for new calls); the edge's
    # routing table reads the same events with 500 ms.
    agent_directory: int = Field(default=200, ge=1)


class KafkaSettings(BaseModel):
    """Where the event log lives and how to talk to it."""

    bootstrap: str | None = Field(
        default=None, description="host:port list; unset starts the embedded Tansu broker"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "voiceagent"
    # Off by default: the embedded broker has no InitProducerId (see DESIGN.md).
    enable_idempotence: bool = False
    replication_factor: int = 1
    partitions_override: int | None = Field(
        default=None, description="use this partition count for every topic (small dev stacks)"
    )
    # How the CLI's readers (events tail, export) decode; the services always write single-object.
    wire_format: WireFormat = "single-object"
    schema_registry_url: str | None = Field(
        default=None,
        description="the schema registry that framed the records (wire_format confluent): ids are its own",
    )
    consumer_fetch_max_wait_ms: int = 20  # tools and one-off readers; services: fetch_waits
    fetch_waits: FetchWaits = FetchWaits()
    # Group timing: Apache Kafka refuses sessions under group.min.session.timeout.ms (6 s by
    # default); lower both together where failover must be fast. Tansu honours small values.
    consumer_session_timeout_ms: int = 6000
    consumer_heartbeat_interval_ms: int = 1000
    consumer_rebalance_timeout_ms: int = 3000


class DatabaseSettings(BaseModel):
    """Where the read models live."""

    url: str | None = Field(
        default=None, description="postgresql+psycopg://...; unset starts the embedded PostgreSQL"
    )
    pool_size: int = 10
    echo: bool = False


class GeminiSettings(BaseModel):
    """The model behind every conversation."""

    api_key: SecretStr = SecretStr("")
    model: str = "gemini-live-2.5-flash-preview"
    summary_model: str = "gemini-2.5-flash"
    base_url: str | None = None
    api_version: str | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle for a local stand-in's TLS")


class TwilioSettings(BaseModel):
    """Telephony: REST credentials and the URL Twilio reaches us on."""

    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: SecretStr = SecretStr("")
    public_base_url: str = "http://127.0.0.1:8080"
    api_base_url: str | None = Field(default=None, description="redirect the REST client (fakes)")
    caller_id: str = "+15005550006"


class EdgeSettings(BaseModel):
    """One edge node: its identity, its sockets and its audio policy."""

    edge_id: str = "edge-1"
    host: str = "127.0.0.1"
    port: Port = 8080
    bridge_host: str = "127.0.0.1"
    bridge_port: Port = 8081
    bridge_public_url: str | None = Field(
        default=None, description="ws:// address workers use to reach this edge's audio bridge"
    )
    bridge_token_ttl_s: float = Field(
        default=4 * 60 * 60 + 300,
        description="how long a call's bridge token opens its bridge after the stream starts: at "
        "least the longest call an agent may have (max_duration_s, at most 4 h), or a worker that "
        "reconnects or takes the call over later is refused and the caller is left without an "
        "agent; the token is spent anyway when the call ends",
    )
    max_streams: int = 200
    caller_buffer_s: float = 5.0
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    vad_onset_frames: int = 3
    vad_hangover_frames: int = 15
    barge_in_min_speech_ms: int = 120
    idle_timeout_s: float = 30.0
    agent_wait_s: float = Field(
        default=20.0,
        ge=0,
        description="how long a live stream may go without a session worker on its audio bridge "
        "(before the first one connects, or after one leaves and none takes over) before the edge "
        "apologises to the caller and ends the call, instead of leaving them in silence; well above "
        "the failover time (a few seconds) and the caller buffer; 0 waits for ever",
    )
    drain_deadline_s: float = 20.0
    recordings_dir: Path | None = Field(
        default=None, description="where call recordings are written; default data_dir/recordings"
    )
    recordings_url: str | None = Field(
        default=None,
        description="store recordings here instead of recordings_dir: any fsspec URL (s3://bucket/prefix "
        "with s3fs installed, gs:// with gcsfs, ...)",
    )
    demo_agent_id: str | None = Field(
        default=None, description="fallback routing for any dialled number (demo only)"
    )
    demo_tenant_id: str = "demo"
    demo_agent_version: int = 1
    demo_record_calls: bool = False
    max_frame_chars: int = Field(
        default=8192, description="larger Twilio text frames are counted and dropped"
    )
    ws_max_bytes: int = Field(default=1 << 20, description="hard WebSocket message cap (closes the socket)")
    twilio_send_timeout_s: float = Field(
        default=5.0, description="a Twilio socket that takes longer to accept a frame is a stuck client"
    )
    bridge_send_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="a session worker's bridge connection that takes longer to accept a frame is "
        "stuck: it is dropped (counted as bridge.worker_stalled) so the call's buffered audio waits "
        "for a worker that takes it over, or the no-agent wait ends the call",
    )
    ws_ping_interval_s: float = 20.0
    public_recordings_base_uri: str | None = Field(
        default=None, description="URI prefix announced in RecordingAvailable; default file:// of the path"
    )


class StreamsSettings(BaseModel):
    """The Faust workers: call state machines and Gemini sessions."""

    app_id: str = "voice-calls"
    worker_id: str = "worker-1"
    tick_interval_s: float = 1.0
    # Failover: a dead worker's partitions move after about the session timeout (DESIGN.md).
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 5.0
    # Faust hard-codes a 1.5 s fetch wait; our transport lowers it (streams/faust_transport.py).
    fetch_max_wait_ms: int = 10
    inputs_in_flight: int = Field(
        default=256,
        ge=1,
        description="Call inputs a calls worker has read and not yet applied (one at a time per "
        "call) before it stops reading more; a rebalance waits for them, so keep it small",
    )
    commit_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the Faust workers commit their input offsets, in the background; "
        "inputs since the last commit are read again after a crash and skipped (ADR 13)",
    )
    sessions_enabled: bool = True
    prewarm_sessions: bool = Field(
        default=True,
        description="Open an inbound call's Gemini session when the call arrives, before its media "
        "stream starts, so the greeting is ready when the caller is connected; the audio waits in "
        "the worker until the stream's bridge is known (ADR 17)",
    )
    tool_timeout_s: float = 5.0
    live_setup_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest a Gemini Live connection's setup (until setupComplete) may take "
        "before it counts as a failed connection and is retried (google-genai waits for ever)",
    )
    tool_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key that signs agents' webhook tool requests (X-Voice-Signature, "
        "docs/tools.md); required outside dev and test",
    )
    tool_webhooks_reach_private: bool | None = Field(
        default=None,
        description="Let webhook tools call loopback, private and link-local addresses; "
        "default: allowed in dev and test only (a tenant must not reach the platform's network)",
    )
    default_max_duration_s: int = 3600
    default_silence_timeout_s: int = 0
    ended_call_retention_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long the calls worker keeps an ended call's state for late facts; then forgets it",
    )
    state_dir: Path | None = Field(default=None, description="Faust data dir; default data_dir/streams")


class ApiSettings(BaseModel):
    """The operator REST API."""

    host: str = "127.0.0.1"
    port: Port = 8000
    bootstrap_api_key: SecretStr = SecretStr("")
    bootstrap_tenant_id: str = "default"
    write_wait_s: float = 3.0
    jwt_secret: SecretStr = SecretStr("")
    jwt_ttl_s: int = 900
    rate_limit_per_s: float = Field(
        default=50.0, gt=0, description="requests a key may make per second, on average (refill rate)"
    )
    rate_limit_burst: int = Field(default=100, ge=1, description="requests a key may make at once")
    max_upload_bytes: int = 10 * 1024 * 1024
    inline_document_max_bytes: int = Field(
        default=64 * 1024, description="larger documents go to blob_dir and travel by reference"
    )
    blob_dir: Path | None = Field(
        default=None, description="where large documents are kept; default data_dir/blobs"
    )


class ArchiveSettings(BaseModel):
    """The event-log archive: where the archiver writes Avro files and how often it rolls them."""

    url: str | None = Field(
        default=None, description="local directory or any fsspec URL (s3://...); default data_dir/archive"
    )
    roll_records: int = Field(default=50_000, ge=1, description="close a file after this many records")
    roll_seconds: float = Field(default=300.0, gt=0, description="close a file this long after it opened")


class Settings(BaseSettings):
    """Everything configurable, read from VOICE_* environment variables (nested with __)."""

    model_config = SettingsConfigDict(**SETTINGS_SOURCES, env_prefix="VOICE_", env_nested_delimiter="__")

    env: Environment = "dev"
    data_dir: Path = Path(".voiceagent")
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    gemini: GeminiSettings = GeminiSettings()
    twilio: TwilioSettings = TwilioSettings()
    edge: EdgeSettings = EdgeSettings()
    api: ApiSettings = ApiSettings()
    streams: StreamsSettings = StreamsSettings()
    archive: ArchiveSettings = ArchiveSettings()

    @model_validator(mode="after")
    def _refuse_default_secrets_outside_dev(self) -> Self:
        if self.env in ("dev", "test"):
            return self
        problems = [
            f"{name} is empty or a known default; set a real secret for env={self.env!r}"
            for name, value in self._secrets()
            if value is None or is_placeholder_secret(value.get_secret_value())
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secrets(self) -> list[tuple[str, SecretStr | None]]:
        secrets: list[tuple[str, SecretStr | None]] = [
            ("VOICE_TWILIO__AUTH_TOKEN", self.twilio.auth_token),
            ("VOICE_GEMINI__API_KEY", self.gemini.api_key),
            ("VOICE_API__BOOTSTRAP_API_KEY", self.api.bootstrap_api_key),
        ]
        if self.kafka.sasl_mechanism is not None:
            secrets.append(("VOICE_KAFKA__SASL_PASSWORD", self.kafka.sasl_password))
        return secrets

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka.bootstrap is None

    @property
    def uses_embedded_database(self) -> bool:
        return self.database.url is None

    @property
    def recordings_target(self) -> str:
        """Where the edge stores recordings: the URL, the directory, or data_dir/recordings."""
        edge = self.edge
        return edge.recordings_url or str(edge.recordings_dir or self.data_dir / "recordings")

    @property
    def archive_url(self) -> str:
        """Where the archive lives: the configured URL, or data_dir/archive."""
        return self.archive.url or str(self.data_dir / "archive")
