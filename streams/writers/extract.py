"""Plain text out of uploaded documents: text, Markdown and HTML (pure; PDF is not supported yet)."""

from __future__ import annotations

import html
import re

SUPPORTED_TYPES = frozenset({"text/plain", "text/markdown", "text/html"})

# Unicode spaces (and the byte-order mark, zero-width spaces) read as one ASCII space: the
# chunker splits on ASCII whitespace, and full-text search glued "Opening\u00a0hours" into one word.
_SPACES = str.maketrans(
    {c: " " for c in "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"}
    | {c: " " for c in "\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"}
)


class UnsupportedContentError(ValueError):
    """A content type we cannot turn into text."""


class UnreadableContentError(ValueError):
    """A document of a supported type that its parser cannot read."""


def extract_text(content_type: str, data: str) -> str:
    """The searchable text of a document of ``content_type``; UnreadableContentError if it has none."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/plain", "text/markdown"):
        text = data
    elif kind == "text/html":
        text = html_text(data)
    else:
        raise UnsupportedContentError(
            f"cannot index {content_type!r}; supported: {', '.join(sorted(SUPPORTED_TYPES))}"
        )
    text = text.translate(_SPACES)
    if not text.strip():
        raise UnreadableContentError("the document has no text to index")
    return text


_NAME = re.compile(r"(/?)([a-zA-Z][a-zA-Z0-9-]*)")
_TAG_START = re.compile(r"/?[a-zA-Z]|[!?]")
"""What may follow a '<' that opens markup; any other '<' (``x < 5``, ``<=``) is text."""
_RAW_ENDS = {
    tag: re.compile(f"</{tag}", re.IGNORECASE) for tag in ("script", "style", "template", "title", "textarea")
}
_RAW_TEXT = frozenset({"script", "style", "template", "title", "textarea"})  # the keys of _RAW_ENDS
"""Elements whose content is skipped up to their own end tag (title: the page's, not its text)."""
_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
        "section", "article", "header", "footer", "nav", "main", "aside", "blockquote", "pre",
        "hr", "dl", "body", "figure", "figcaption", "form",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th", "dt", "dd", "option", "label", "img", "input", "button"})


def html_text(data: str) -> str:
    """The text of an HTML document, in one pass that is linear in its length.

    The standard library's html.parser (3.11) is quadratic on unclosed markup: 64 KiB of
    ``<a`` lines took 41 s, and on the writers' event loop that stalled every agent and
    knowledge command. Here every search moves forward only. Blocks and table cells are
    separated (``<td>Monday</td><td>9am</td>`` was "Monday9am"); a missing ``</head>`` no
    longer hides the body; comments, scripts, styles and the title are left out.
    """
    parts: list[str] = []
    size = len(data)
    position = 0
    next_gt = -1  # the first '>' at or after the current tag's '<' (searched forward only)
    while position < size:
        lt = data.find("<", position)
        if lt < 0:
            parts.append(data[position:])
            break
        parts.append(data[position:lt])
        if not _TAG_START.match(data, lt + 1):  # a '<' that starts no markup: text
            parts.append("<")
            position = lt + 1
            continue
        if data.startswith("<!--", lt):
            end = data.find("-->", lt + 4)
            position = size if end < 0 else end + 3
            continue
        if next_gt <= lt:
            next_gt = data.find(">", lt + 1)
            if next_gt < 0:
                next_gt = size  # no tag can close any more: the rest is text
        following = data.find("<", lt + 1, next_gt)
        if next_gt >= size or following >= 0:  # a '<' that starts no tag
            parts.append("<")
            position = lt + 1
            continue
        name = _NAME.match(data, lt + 1, next_gt)
        position = next_gt + 1
        if name is None:  # <!doctype ...>, <?xml ...?>
            continue
        closing, tag = name.group(1) == "/", name.group(2).lower()
        if not closing and tag in _RAW_TEXT:
            # Searched in the text itself, case-insensitively: positions in data.lower() drift
            # from data's wherever lowering lengthens a character ("İ" becomes two).
            found = _RAW_ENDS[tag].search(data, position)
            position = size if found is None else (data.find(">", found.end()) + 1 or size)
            continue
        if tag in _BLOCK:
            parts.append("\n\n")
        elif tag in _CELL:
            parts.append(" ")
    return html.unescape("".join(parts))
