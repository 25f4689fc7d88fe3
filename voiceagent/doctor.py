"""`voiceagent doctor`: configuration and connectivity checks, explained in plain words."""

from __future__ import annotations

import asyncio
import socket
import ssl
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from infra.kafka import make_admin
from infra.migrate import current_revision
from infra.settings import Settings, is_placeholder_secret
from streams.webhooks.settings import WebhookSettings
from voiceagent.devfile import DevAddresses

OK, WARN, FAIL = "ok", "warn", "FAIL"


def run_doctor(settings: Settings, console: Console) -> int:
    """Print one row per check; the exit code is 1 when any check failed."""
    probed, running = _with_the_running_dev_stack(settings)
    rows = [
        _broker(probed, running),
        _database(probed, running),
        _gemini(settings),
        _twilio(settings),
        _public_url(settings),
        _platform_secrets(settings, WebhookSettings()),
    ]
    table = Table(title="voiceagent doctor")
    for column in ("check", "result", "what it means"):
        table.add_column(column)
    colour = {OK: "green", WARN: "yellow", FAIL: "red"}
    for name, result, words in rows:
        table.add_row(name, f"[{colour[result]}]{result}[/]", words)
    console.print(table)
    return 1 if any(result == FAIL for _, result, _ in rows) else 0


def _with_the_running_dev_stack(settings: Settings) -> tuple[Settings, bool]:
    """Settings that name the running `voiceagent dev`'s embedded parts, when it runs (dev.json)."""
    if settings.kafka.bootstrap is not None and settings.database.url is not None:
        return settings, False
    try:
        dev = DevAddresses.read(settings.data_dir.resolve())
    except (FileNotFoundError, TypeError, ValueError):
        return settings, False
    kafka = settings.kafka.model_copy(update={"bootstrap": settings.kafka.bootstrap or dev.bootstrap})
    database = settings.database.model_copy(update={"url": settings.database.url or dev.database_url})
    return settings.model_copy(update={"kafka": kafka, "database": database}), True


def _broker(settings: Settings, dev_running: bool = False) -> tuple[str, str, str]:
    if settings.kafka.bootstrap is None:
        return "broker", OK, "embedded, not running now: `voiceagent dev` starts Tansu"

    async def probe() -> int:
        admin = make_admin(settings.kafka)
        await asyncio.wait_for(admin.start(), 10)
        try:
            return len(await admin.list_topics())
        finally:
            await admin.close()

    try:
        topics = asyncio.run(probe())
    except Exception as err:
        return (
            "broker",
            FAIL,
            f"cannot reach {settings.kafka.bootstrap}: {err or type(err).__name__}{_stale(dev_running)}",
        )
    where = "the running dev stack's embedded broker, " if dev_running else ""
    return "broker", OK, f"{where}{settings.kafka.bootstrap} answers; {topics} topics"


def _stale(dev_running: bool) -> str:
    # dev.json is removed when `voiceagent dev` stops; one left behind names a platform that died.
    return " (named by dev.json: did `voiceagent dev` stop without cleaning up?)" if dev_running else ""


def _database(settings: Settings, dev_running: bool = False) -> tuple[str, str, str]:
    if settings.database.url is None:
        return "database", OK, "embedded, not running now: `voiceagent dev` starts PostgreSQL"
    try:
        revision = current_revision(settings.database)
    except Exception as err:
        return "database", FAIL, f"cannot connect: {str(err).splitlines()[0]}{_stale(dev_running)}"
    if revision is None:
        return "database", WARN, "reachable but not migrated: run `voiceagent migrate`"
    return "database", OK, f"reachable, at migration {revision}"


def _gemini(settings: Settings) -> tuple[str, str, str]:
    gemini = settings.gemini
    if not gemini.api_key.get_secret_value() and not gemini.base_url:
        return (
            "gemini",
            WARN,
            "no VOICE_GEMINI__API_KEY: the dev stack uses the offline stand-in (scripted replies)",
        )
    host = urlsplit(gemini.base_url or "https://generativelanguage.googleapis.com").hostname or ""
    port = urlsplit(gemini.base_url or "https://x").port or 443
    try:
        context = ssl.create_default_context(cafile=str(gemini.ca_file) if gemini.ca_file else None)
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            pass
    except OSError as err:
        return "gemini", FAIL, f"cannot open TLS to {host}:{port}: {err}"
    return "gemini", OK, f"TLS to {host}:{port} works; model {gemini.model}"


def _twilio(settings: Settings) -> tuple[str, str, str]:
    twilio = settings.twilio
    if not twilio.account_sid.startswith("AC") or len(twilio.account_sid) != 34:
        return "twilio", FAIL, "VOICE_TWILIO__ACCOUNT_SID must look like AC followed by 32 hex digits"
    if not twilio.auth_token.get_secret_value():
        return (
            "twilio",
            WARN,
            "no VOICE_TWILIO__AUTH_TOKEN: fine offline (the dev stack makes one), needed for real calls",
        )
    return (
        "twilio",
        OK,
        f"account {twilio.account_sid[:6]}…, signatures checked against {twilio.public_base_url}",
    )


def _public_url(settings: Settings) -> tuple[str, str, str]:
    url = urlsplit(settings.twilio.public_base_url)
    if url.scheme != "https":
        return (
            "public URL",
            WARN,
            f"{settings.twilio.public_base_url} is not https: Twilio needs an https URL (ngrok works)",
        )
    if url.hostname in ("127.0.0.1", "localhost"):
        return "public URL", WARN, "points at this machine only; Twilio cannot reach it"
    return "public URL", OK, f"Twilio will call {settings.twilio.public_base_url}"


def _platform_secrets(settings: Settings, hooks: WebhookSettings) -> tuple[str, str, str]:
    """The two secrets tenants' signing keys derive from: the services refuse to start without
    them outside dev and test, so doctor says so first (ADR 27)."""
    secrets = (
        ("VOICE_STREAMS__TOOL_WEBHOOK_SECRET", settings.streams.tool_webhook_secret),
        ("VOICE_WEBHOOKS__SECRET", hooks.secret),
    )
    missing = [name for name, secret in secrets if is_placeholder_secret(secret.get_secret_value())]
    if settings.env in ("dev", "test"):
        if missing:
            return "webhook secrets", OK, f"{' and '.join(missing)} unset: fine for env={settings.env}"
        return "webhook secrets", OK, "both set"
    if missing:
        return (
            "webhook secrets",
            FAIL,
            f"{' and '.join(missing)} must be set for env={settings.env}: the API, the session "
            "workers and the webhooks worker refuse to start without them (tenants' signing keys "
            "derive from them)",
        )
    return "webhook secrets", OK, "both set"
