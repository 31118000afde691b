"""A free TCP port on the loopback interface, for servers started by the benchmark and the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    # The OS picks an unused port; it stays free until someone binds it (good enough on loopback).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
