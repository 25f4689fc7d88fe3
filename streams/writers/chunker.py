"""Splits document text into overlapping, sentence-aligned chunks for full-text search (pure)."""

from __future__ import annotations

import re

_PARAGRAPH = re.compile(r"\n\s*\n")
# Latin sentences end at .!? and a space; Chinese and Japanese ones at 。！？ with no space after.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")
_UNSPACED_END = ("。", "！", "？")
# Where an overlap may start: after a space, or after a Chinese or Japanese sentence end.
_BOUNDARY = re.compile(r" |(?<=[。！？])(?=.)")
_SPACE = re.compile(r"[ \t\r\f\v]+")


def chunk_text(text: str, *, max_chars: int = 1200, overlap_chars: int = 150) -> list[str]:
    """Chunks of at most ``max_chars``, each starting with up to ``overlap_chars`` of the last one."""
    if max_chars <= overlap_chars:
        raise ValueError("max_chars must exceed overlap_chars")
    pieces = [
        p for para in _PARAGRAPH.split(text) for p in _pieces(_normalise(para), max_chars - overlap_chars)
    ]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = _join(current, piece) if current else piece
        if len(candidate) <= max_chars:
            current = candidate
            continue
        chunks.append(current)
        current = _join(_tail(current, overlap_chars), piece)
    if current:
        chunks.append(current)
    return chunks


def _join(before: str, after: str) -> str:
    """Two pieces as the text has them: Chinese and Japanese sentences follow with no space."""
    if before.endswith(_UNSPACED_END):
        return f"{before}{after}".strip()
    return f"{before} {after}".strip()


def _normalise(paragraph: str) -> str:
    return _SPACE.sub(" ", paragraph.replace("\n", " ")).strip()


def _pieces(paragraph: str, limit: int) -> list[str]:
    """Sentences of the paragraph, with any sentence longer than ``limit`` cut at word boundaries."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def _tail(text: str, size: int) -> str:
    if size <= 0 or len(text) <= size:
        return text if size > 0 else ""
    boundary = _BOUNDARY.search(text, len(text) - size)
    return text[boundary.end() :] if boundary is not None else text[-size:]
