"""Unfragmented, unmasked WebSocket frames as a server sends them (RFC 6455 section 5.2).

The media path writes one caller-audio frame to the bridge and one playback frame to Twilio
per 20 ms per call; building the frame here is a struct pack and a join, where the
``websockets`` sans-I/O ``send_*`` builds a ``Frame``, checks extensions and queues it
(~2 µs a frame, measured in bench/bench_edge.py). Only for connections without extensions.
"""

from __future__ import annotations

import struct

TEXT = 0x1
BINARY = 0x2
_FIN = 0x80
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame of ``opcode`` carrying ``payload``, unmasked (server to client)."""
    size = len(payload)
    if size < 126:
        header = _SHORT.pack(_FIN | opcode, size)
    elif size < 65536:
        header = _MEDIUM.pack(_FIN | opcode, 126, size)
    else:
        header = _LONG.pack(_FIN | opcode, 127, size)
    return header + payload
