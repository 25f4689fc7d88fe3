"""free_port hands out bindable ports that outgoing connections cannot take in the meantime."""

from __future__ import annotations

import socket

import pytest

from infra import process
from infra.process import _ephemeral_range, free_port


def test_ports_are_bindable_distinct_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port < low for port in ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


class _Picks:
    """A stand-in for the module's random source: offers the given ports in order."""

    def __init__(self, *ports: int) -> None:
        self._ports = list(ports)

    def randrange(self, _stop: int) -> int:
        return self._ports.pop(0) - process._FIXED_PORTS_FLOOR


def test_a_port_in_use_or_already_handed_out_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    busy, spare, fresh = free_port(), free_port(), free_port()  # each bindable when handed out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", busy))
        held.listen()
        process._handed_out -= {busy, fresh}  # busy: in use by a listener, not our bookkeeping
        monkeypatch.setattr(process, "_random", _Picks(busy, spare, fresh))
        assert free_port() == fresh
