"""Plain text out of uploaded documents: text, Markdown and HTML (pure; PDF is not supported yet)."""

from __future__ import annotations

from html.parser import HTMLParser

SUPPORTED_TYPES = frozenset({"text/plain", "text/markdown", "text/html"})


class UnsupportedContentError(ValueError):
    """A content type we cannot turn into text."""


class UnreadableContentError(ValueError):
    """A document of a supported type that its parser cannot read."""


def extract_text(content_type: str, data: str) -> str:
    """The searchable text of a document of ``content_type``."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/plain", "text/markdown"):
        return data
    if kind == "text/html":
        return _html_text(data)
    raise UnsupportedContentError(
        f"cannot index {content_type!r}; supported: {', '.join(sorted(SUPPORTED_TYPES))}"
    )


def _html_text(data: str) -> str:
    parser = _TextOnly()
    try:
        parser.feed(data)
        parser.close()
    except AssertionError as err:
        # html.parser (via _markupbase) reports malformed declarations such as
        # ``<![foo[`` with AssertionError, not ValueError; that is bad input, not our bug.
        raise UnreadableContentError(f"cannot read the HTML: {err}") from err
    return parser.text()


class _TextOnly(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "template", "noscript"})
    _BLOCK = frozenset(
        {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self._parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._parts.append(data)

    def text(self) -> str:
        return "".join(self._parts)
