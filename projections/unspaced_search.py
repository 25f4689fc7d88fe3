"""Knowledge search for scripts written without spaces between words (Chinese, Japanese, Thai...): pure.

PostgreSQL's text-search parser splits words at spaces and punctuation, so a Japanese sentence
is one "word" and a query for any word inside it finds nothing; a Korean word carries its
particles (환불은, "the refund") and is not found as 환불 either. For a query in one of these
scripts the read side matches its terms as substrings instead (``projections.queries``), and
this module reads the query and cuts the snippet.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_UNSPACED = re.compile(
    "["
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1100-\u11ff"  # Hangul Jamo
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # CJK extensions B-G
    "]"
)
_TOKEN = re.compile(r'(-?)(?:"([^"]*)"?|(\S+))')
_MARK_OPEN, _MARK_CLOSE = "<mark>", "</mark>"


@dataclass(frozen=True, slots=True)
class UnspacedQuery:
    """The terms a chunk must contain, and those it must not (NFKC; as written otherwise).

    Their case is left to PostgreSQL, which lower-cases both them and the chunk's text
    (``chunk.search_text``): Python's ``lower()`` differs from it (İ, a word-final Σ), and in a
    database created with a C ctype PostgreSQL lower-cases ASCII letters only.
    """

    include: tuple[str, ...]
    exclude: tuple[str, ...]


def normalise(text: str) -> str:
    """When two terms are the same: NFKC (full-width ＡＢＣ is ABC), lower case. (The search
    itself leaves the lower-casing to PostgreSQL: ``UnspacedQuery``.)"""
    return unicodedata.normalize("NFKC", text).lower()


def unspaced_query(query: str) -> UnspacedQuery | None:
    """The query's terms when it is written in an unspaced script, else None (full-text search).

    The web-search syntax the full-text search takes is read the same way where it can be:
    ``"a phrase"`` is one term, ``-term`` excludes, and ``or`` is dropped (every term must
    match: a substring search has no ranking that would make OR useful).
    """
    if not _UNSPACED.search(query):
        return None
    include: list[str] = []
    exclude: list[str] = []
    seen: set[tuple[bool, str]] = set()
    for match in _TOKEN.finditer(query):
        negated, quoted, bare = match.groups()
        term = unicodedata.normalize("NFKC", (quoted if quoted is not None else bare) or "").strip()
        key = (bool(negated), normalise(term))
        if not term or (not negated and quoted is None and key[1] == "or") or key in seen:
            continue
        seen.add(key)
        (exclude if negated else include).append(term)
    return UnspacedQuery(tuple(include), tuple(exclude))


def snippet(text: str, terms: tuple[str, ...], *, width: int = 120) -> str:
    """About ``width`` characters around the first match, every match in it wrapped in <mark>."""
    shown = unicodedata.normalize("NFKC", text)
    if not terms:
        return shown[:width]
    # Case-insensitive matching on the shown text itself: positions found in a lower-cased copy
    # drift wherever lower() changes a length (İ becomes two characters).
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    first = pattern.search(shown)
    if first is None:
        return shown[:width]
    start = max(0, first.start() - width // 3)
    end = min(len(shown), start + width)
    window = shown[start:end]
    marked = pattern.sub(lambda m: f"{_MARK_OPEN}{m.group(0)}{_MARK_CLOSE}", window)
    return ("…" if start else "") + marked + ("…" if end < len(shown) else "")
