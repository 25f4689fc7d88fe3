"""Document reading for the knowledge writer: markup the HTML parser chokes on is a rejection."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.ids import CorrelationId, DocumentId, EventId, KnowledgeBaseId, TenantId
from schemas.knowledge import AddDocument, CreateKnowledgeBase, KnowledgeCommandRejected
from streams.writers import knowledge_writer
from streams.writers.extract import UnreadableContentError, extract_text
from streams.writers.spec import knowledge_spec, read_document

NOW = datetime(2026, 11, 26, tzinfo=UTC)
KB = KnowledgeBaseId("kb_1")
# html.parser raises AssertionError on each of these (an unknown marked-section keyword, a
# declaration with no name token), where every other malformed input is a ValueError.
BROKEN_HTML = [
    "<p>Opening hours</p><![foo[ 9 to 5 ]]>",
    "<p>hours</p><![<![foo[x]]>",
    "<!DOCTYPE html><p>hi</p><![if !IE]><p>x</p><![bar[ ]]>",
]


def _add(content: str, correlation: str = "k2") -> AddDocument:
    return AddDocument(
        tenant_id=TenantId("t1"),
        kb_id=KB,
        seq=0,
        event_id=EventId(f"cmd-{correlation}"),
        occurred_at=NOW,
        correlation_id=CorrelationId(correlation),
        document_id=DocumentId("d1"),
        title="hours",
        content_type="text/html; charset=utf-8",
        content=content,
        content_uri=None,
        size_bytes=len(content),
    )


@pytest.mark.parametrize("html", BROKEN_HTML)
def test_html_the_parser_cannot_read_is_an_unreadable_content_error(html: str) -> None:
    with pytest.raises(UnreadableContentError, match="cannot read the HTML"):
        extract_text("text/html", html)


def test_html_the_parser_can_read_still_gives_its_text() -> None:
    assert extract_text("text/html", "<p>Open</p><![CDATA[9 to 5]]><script>x()</script>") == "\n\nOpen\n\n"


@pytest.mark.parametrize("html", BROKEN_HTML)
def test_read_document_gives_the_parser_failure_as_an_error(html: str) -> None:
    text = read_document(_add(html), Path("/nonexistent"))
    assert text.text is None
    assert "cannot read the HTML" in (text.error or "")


def test_the_knowledge_writer_rejects_it_as_unreadable_instead_of_raising() -> None:
    spec = knowledge_spec(Path("/nonexistent"))
    state = knowledge_writer.initial_state(KB)
    create = CreateKnowledgeBase(
        tenant_id=TenantId("t1"),
        kb_id=KB,
        seq=0,
        event_id=EventId("cmd-k1"),
        occurred_at=NOW,
        correlation_id=CorrelationId("k1"),
        name="kb",
    )
    state = knowledge_writer.fold(state, spec.decide(state, create))
    events = spec.decide(state, _add(BROKEN_HTML[0]))
    assert [type(e) for e in events] == [KnowledgeCommandRejected]
    rejected = events[0]
    assert isinstance(rejected, KnowledgeCommandRejected)
    assert rejected.code == "unreadable"
    assert "unknown status keyword 'foo'" in rejected.reason
