"""Deleting a document's stored file touches only files inside the blob directory."""

from __future__ import annotations

from pathlib import Path

from api.knowledge import _forget_blob


def test_only_files_inside_the_blob_directory_are_ever_deleted(tmp_path: Path) -> None:
    blobs, outside = tmp_path / "blobs", tmp_path / "elsewhere.txt"
    (blobs / "t" / "kb").mkdir(parents=True)
    inside = blobs / "t" / "kb" / "doc 1.txt"
    inside.write_text("x")
    outside.write_text("y")
    _forget_blob(blobs, outside.resolve().as_uri())
    _forget_blob(blobs, "s3://bucket/doc.txt")
    _forget_blob(blobs, None)
    assert outside.exists()
    _forget_blob(blobs, inside.resolve().as_uri())  # percent-encoded space in the URI
    assert not inside.exists()
