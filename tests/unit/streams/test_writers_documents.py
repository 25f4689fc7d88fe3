"""Document reading for the knowledge writer: text out of HTML in one linear pass, and a document
with no text to index is a rejection."""

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
# Markup html.parser raised AssertionError on (it was "unreadable"): read as text now.
ODD_HTML = [
    "<p>Opening hours</p><![foo[ 9 to 5 ]]>",
    "<p>hours</p><![<![foo[x]]>",
    "<!DOCTYPE html><p>hi</p><![if !IE]><p>x</p><![bar[ ]]>",
]
NO_TEXT = [
    "<script>x()</script>",
    "<!-- nothing -->",
    "<html><head><title>t</title></head><body> </body>",
    "",
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


@pytest.mark.parametrize("html", ODD_HTML)
def test_odd_markup_still_gives_its_text(html: str) -> None:
    assert extract_text("text/html", html).split()[0] in ("Opening", "hours", "hi")


@pytest.mark.parametrize("html", NO_TEXT)
def test_a_document_with_no_text_is_unreadable(html: str) -> None:
    with pytest.raises(UnreadableContentError, match="no text"):
        extract_text("text/html", html)
    with pytest.raises(UnreadableContentError, match="no text"):
        extract_text("text/plain", " \n\t ")


@pytest.mark.parametrize(
    ("html", "words"),
    [
        # A missing </head> hid the whole body.
        ("<html><head><title>x</title><body><p>Refund policy thirty days</p>", "Refund policy thirty days"),
        # Cells and definitions were glued together ("Monday9am").
        ("<table><tr><td>Monday</td><td>9am</td></tr></table>", "Monday 9am"),
        ("<dl><dt>Parking</dt><dd>Free</dd></dl>", "Parking Free"),
        # A script's own markup is no text; entities are.
        ("<p>a</p><script>if (a<b) x='</p>'</script><p>b &amp; c</p>", "a b & c"),
        ("x<!-- hidden <p>y</p> -->z", "xz"),
        ("a < b and c<d>e", "a < b and ce"),
        ("text <!-- never closed", "text"),
        # Lowering "İ" lengthens the text: positions found in a lowered copy skipped real text.
        (
            "<title>İzmir</title><h1>İletişim</h1><script>t()</script><p>Our office hours</p>",
            "İletişim Our office hours",
        ),
        # A '<' that opens no markup is text, not the start of a tag running to the next '>'.
        ("<p>If x < 5 and y > 3 then call us.</p>", "If x < 5 and y > 3 then call us."),
        ("<p>Wait <5 minutes, open >9am daily</p>", "Wait <5 minutes, open >9am daily"),
        ("<SCRIPT>x()</Script>after", "after"),
        # Unicode spaces and a byte-order mark split words as ASCII spaces do.
        ("\ufeffOpening\u00a0hours", "Opening hours"),
    ],
)
def test_html_gives_the_words_a_reader_sees(html: str, words: str) -> None:
    assert " ".join(extract_text("text/html", html).split()) == words


def test_unclosed_markup_is_read_in_one_pass() -> None:
    # html.parser was quadratic here: 64 KiB of "<a" lines took 41 s on the writers' loop.
    text = extract_text("text/html", "<a\n" * 200_000 + "<p>end</p>")
    assert text.count("<a") == 200_000
    assert text.rstrip().endswith("end")


def test_html_the_parser_can_read_still_gives_its_text() -> None:
    assert extract_text("text/html", "<p>Open</p><![CDATA[9 to 5]]><script>x()</script>") == "\n\nOpen\n\n"


def test_read_document_gives_an_empty_document_as_an_error() -> None:
    text = read_document(_add(NO_TEXT[0]), Path("/nonexistent"))
    assert text.text is None
    assert "no text" in (text.error or "")


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
    events = spec.decide(state, _add(NO_TEXT[0]))
    assert [type(e) for e in events] == [KnowledgeCommandRejected]
    rejected = events[0]
    assert isinstance(rejected, KnowledgeCommandRejected)
    assert rejected.code == "unreadable"
    assert "no text" in rejected.reason
