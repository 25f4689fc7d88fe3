"""X-Twilio-Signature checks against the configured public URL (never the Host we were given)."""

from __future__ import annotations

from collections.abc import Sequence

from twilio.request_validator import RequestValidator

from edge.twiml import media_stream_url

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureChecker:
    """Validates webhooks and the media socket upgrade with twilio's ``RequestValidator``."""

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._base = public_base_url.rstrip("/")
        self._media_url = media_stream_url(public_base_url)

    def public_url(self, path: str, query: str = "") -> str:
        return self._base + path + (f"?{query}" if query else "")

    def check_form(
        self, path: str, query: str, fields: Sequence[tuple[str, str]], signature: str | None
    ) -> bool:
        """A form-encoded webhook: URL (with its query) plus sorted POST params.

        ``fields`` in the order posted, a key as often as it came: Twilio signs every value of a
        repeated key, which a plain dict would have collapsed to its last.
        """
        if not signature:
            return False
        params = _Fields()
        for key, value in fields:
            params.setdefault(key, []).append(value)
        return bool(self._validator.validate(self.public_url(path, query), params, signature))

    def check_media_upgrade(self, signature: str | None) -> bool:
        """The WebSocket upgrade: the exact ``wss://`` URL from the TwiML, no params."""
        if not signature:
            return False
        return bool(self._validator.validate(self._media_url, {}, signature))


class _Fields(dict[str, list[str]]):
    """Form fields as ``RequestValidator`` reads a multi-dict (Flask's ``getall``)."""

    def getall(self, key: str) -> list[str]:
        return self[key]
