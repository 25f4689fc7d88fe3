"""Confluent schema ids resolved by a real schema registry, for reading re-framed records.

A Confluent-framed record names its writer schema by an id that only the registry which
framed it can map back: ids are assigned in registration order, so no table of ours can
guess them. Reading only: the platform's services never write this framing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class SchemaRegistryError(RuntimeError):
    """Confluent-framed records cannot be read: no registry configured, or it does not answer."""


class RegistrySchemaIds:
    """``GET {url}/schemas/ids/{id}``, each id asked once and cached (a registry id never changes).

    Blocking: it is called from the codec's decode, once per id a reader meets.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._schemas: dict[int, str | None] = {}

    def id_for(self, full_name: str, schema_json: str) -> int:
        """Never: readers do not register schemas (the services write single-object encoding)."""
        raise SchemaRegistryError(f"{full_name}: this resolver only reads ids from {self._url}")

    def schema_for(self, schema_id: int) -> str | None:
        """The writer schema the registry holds under ``schema_id``; None if it has none."""
        if schema_id not in self._schemas:
            self._schemas[schema_id] = self._fetch(schema_id)
        return self._schemas[schema_id]

    def _fetch(self, schema_id: int) -> str | None:
        url = f"{self._url}/schemas/ids/{schema_id}"
        request = urllib.request.Request(url, headers={"Accept": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            detail = exc.read(200).decode("utf-8", "replace")
            raise SchemaRegistryError(f"schema registry {url}: HTTP {exc.code} {detail}") from exc
        except (OSError, ValueError) as exc:  # refused, timed out, unresolvable, not a URL
            raise SchemaRegistryError(f"schema registry {url}: {exc}") from exc
        try:
            schema = json.loads(body)["schema"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SchemaRegistryError(f"schema registry {url}: no schema in the answer ({exc})") from exc
        if not isinstance(schema, str):
            raise SchemaRegistryError(f"schema registry {url}: the schema is not a string")
        return schema
