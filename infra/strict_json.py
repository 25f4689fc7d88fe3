"""JSON parsing as RFC 8259 has it: no NaN, no Infinity, no number too large for a float."""

from __future__ import annotations

import json
import math
from typing import Any


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that raises ValueError for what Python's parser takes but JSON is not.

    ``NaN``, ``Infinity`` and ``1e999`` (which Python reads as infinity) would be written back
    as non-JSON by ``json.dumps``: into a message to Gemini, or a record for integrators.
    """
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:20]} is too large for a JSON number")
    return value
