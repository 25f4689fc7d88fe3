"""The dev stack's address book, written by `voiceagent dev` and read by `voiceagent call ...`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FILE_NAME = "dev.json"


class DevFileError(ValueError):
    """A dev.json this version cannot read: damaged, or written by another version."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DevAddresses:
    """Where the running dev platform's parts listen, and the credentials a local tool needs."""

    bootstrap: str
    database_url: str
    api_url: str
    api_key: str
    edge_url: str
    twilio_auth_token: str
    standin_control_url: str | None
    demo_agent_id: str | None
    demo_number: str
    twilio_standin_url: str | None = None
    """The offline Twilio stand-in the dialer calls through, when no Twilio account is configured."""

    def write(self, data_dir: Path) -> Path:
        path = data_dir / FILE_NAME
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)  # it holds the dev API key
        return path

    @classmethod
    def read(cls, data_dir: Path) -> DevAddresses:
        path = data_dir / FILE_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: start the platform with `make dev` first")
        try:
            return cls._from_json(json.loads(path.read_text()))
        except (TypeError, ValueError) as err:
            raise DevFileError(
                f"{path} is not one this version of voiceagent reads ({err}): restart `voiceagent dev`"
            ) from err

    @classmethod
    def _from_json(cls, raw: object) -> DevAddresses:
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON {type(raw).__name__}, not an object")
        for f in fields(cls):
            value = raw.get(f.name)
            if not isinstance(value, str) and not (value is None and "None" in str(f.type)):
                raise TypeError(f"{f.name} is {value!r}, not a string" if f.name in raw else f"no {f.name}")
        return cls(**raw)
