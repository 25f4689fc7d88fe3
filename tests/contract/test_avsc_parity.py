"""The committed .avsc files and docs/topics.md match the record dataclasses exactly."""

import dataclasses
import json
from typing import Any

import pytest

from schemas import avro_schema as gen
from schemas import topics_doc
from schemas.registry import ALL_RECORDS


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
def test_committed_avsc_equals_the_schema_derived_from_the_dataclass(cls: type[Any]) -> None:
    path = gen.avsc_path(cls)
    assert path.exists(), f"{path} missing: run python -m schemas.avro_schema --write"
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed == gen.avro_schema(cls)
    assert [f["name"] for f in committed["fields"]] == [f.name for f in dataclasses.fields(cls)]


def test_generator_check_is_clean() -> None:
    assert gen.stale_files(ALL_RECORDS) == []
    assert gen.main(["--check"]) == 0


def test_topics_doc_is_up_to_date() -> None:
    assert topics_doc.main(["--check"]) == 0, "run python -m schemas.topics_doc --write"
