"""What new TwiML given to a live call (REST ``calls(sid).update(twiml=…)``) makes Twilio do next."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def dialled_number(twiml: str) -> str | None:
    """The number the document's ``<Dial>`` bridges the caller to; None if it dials nobody.

    A document without a ``<Dial>`` before its end (``<Say>`` then ``<Hangup/>``, say, or TwiML
    Twilio cannot parse, where it says "an application error has occurred") ends the call.
    """
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None
    if root.tag != "Response":
        return None
    for verb in root:
        if verb.tag == "Dial":
            return _dialled(verb) or None
        if verb.tag in ("Hangup", "Reject"):
            return None
    return None


def _dialled(dial: ET.Element) -> str:
    """``<Dial>+1555…</Dial>`` or ``<Dial><Number>+1555…</Number></Dial>`` (or a SIP/client noun)."""
    for noun in dial:
        if noun.text and noun.text.strip():
            return noun.text.strip()
    return (dial.text or "").strip()
