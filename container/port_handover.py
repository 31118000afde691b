#!/usr/bin/env python3
"""Holds the service port from the container's first second until Ray Serve can answer on it.

SageMaker pings /ping from the moment the container starts and wants every answer within 2 s.
Measured on the 2-core development machine (2026-11-25), the old hand-over lost that three ways:
  * the 503 responder ran as a thread of the entrypoint, sharing its GIL with model building and
    ray.init: /ping took up to 1.5 s;
  * it closed the port before Ray's proxy bound it: ~5 s of refused connections, plus a reset
    for a connection still queued on the closed socket;
  * once bound, Ray's proxy *held* requests (5 s timeouts) for ~15 s: the app's route exists as
    soon as it is deployed, but requests wait until an ingress replica has started.

So the responder is a separate process (no shared GIL), and the port is never closed: Ray Serve's listener
(the ingress replica's own server with direct ingress, serve_app/direct_ingress.py; else Ray's proxy)
binds it with SO_REUSEPORT, and so does this responder, so both listen at once
in one reuse-port group. A classic BPF program attached to that group decides which listener
gets each new connection:
  1. while Ray starts, every connection goes to this responder (503 "loading"), except those
     from the probe address 127.0.0.2, which go to Ray Serve's listener;
  2. the hand-over probes Ray Serve's listener from 127.0.0.2 until it answers /ping with the app's own
     JSON quickly, then steers every new connection to Ray Serve's listener, answers what is already
     queued on this socket, and only then closes it: no gap, no reset, no held request.
Without SO_REUSEPORT steering (not Linux), it falls back to closing before Ray binds.

Run as ``port_handover.py HOST PORT``: prints ``listening steering=yes|no`` once bound, then
reads commands on stdin: ``handover`` (probe, steer, drain, close, exit 0) or ``close``; end of
input (the entrypoint died) closes too. Only the standard library: it starts in a blink.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Linux: attach a classic BPF program choosing the listener of a SO_REUSEPORT group.
SO_ATTACH_REUSEPORT_CBPF = 51
# Classic BPF opcodes and the offset base that reads the IP header (linux/filter.h).
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
SKF_NET_OFF = -0x100000
# Connections from this address go to Ray Serve's listener during the start (the hand-over probe).
PROBE_SOURCE = "127.0.0.2"
# The listeners of a reuse-port group are numbered in the order they started listening.
RESPONDER_INDEX, RAY_PROXY_INDEX = 0, 1

RESPONDER_SERVER = "sd-turbo-loading-responder"

PROBE_TIMEOUT_S = 1.0
PROBE_INTERVAL_S = 0.2
# Connections whose SYN was steered here just before the switch complete their handshake within
# one round trip on the host; this much later, everything meant for this socket is queued.
HANDSHAKE_SETTLE_S = 0.1


Instruction = tuple[int, int, int, int]  # classic BPF: (code, jt, jf, k)


def attach_steering(sock: socket.socket, program: list[Instruction]) -> None:
    """Attach ``program`` to the reuse-port group of listening socket ``sock`` (replacing any)."""
    code = b"".join(struct.pack("HBBI", op, jt, jf, k & 0xFFFFFFFF) for op, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)  # the kernel copies it


def hold_program() -> list[Instruction]:
    """Everything to the responder, except connections from the probe address (to Ray Serve's listener)."""
    probe = struct.unpack("!I", socket.inet_aton(PROBE_SOURCE))[0]
    return [
        (BPF_LD_W_ABS, 0, 0, SKF_NET_OFF + 12),  # IPv4 source address
        (BPF_JEQ_K, 0, 1, probe),
        (BPF_RET_K, 0, 0, RAY_PROXY_INDEX),
        (BPF_RET_K, 0, 0, RESPONDER_INDEX),
    ]


def handover_program() -> list[Instruction]:
    """Everything to Ray Serve's listener. (An index past the group's end means "kernel's choice", so
    once the responder has closed, the only listener left gets everything.)"""
    return [(BPF_RET_K, 0, 0, RAY_PROXY_INDEX)]


class LoadingHandler(BaseHTTPRequestHandler):
    def version_string(self) -> str:  # the Server header: lets the probe tell this answer from Ray's
        return RESPONDER_SERVER

    def _loading(self) -> None:
        body = b'{"status": "loading"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "5")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _loading

    def log_message(self, *args) -> None:  # keep health checks out of the log
        pass


class LoadingResponder(ThreadingHTTPServer):
    """Answers 503 "loading" on HOST:PORT, sharing the port with Ray Serve's listener (SO_REUSEPORT)."""

    daemon_threads = False  # server_close waits for the answers being written

    def __init__(self, host: str, port: int):
        self.steering = False
        super().__init__((host, port), LoadingHandler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def server_activate(self) -> None:
        super().server_activate()  # listen(): this socket is now listener 0 of the group
        if self.socket.family == socket.AF_INET:
            try:
                attach_steering(self.socket, hold_program())
                self.steering = True
            except OSError:
                self.steering = False

    def start(self) -> LoadingResponder:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def probe_ray(self, deadline_s: float) -> str:
        """Wait until Ray Serve's listener answers /ping with the app's JSON within PROBE_TIMEOUT_S."""
        host, port = self.server_address[:2]
        target = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host
        give_up = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < give_up:
            try:
                conn = http.client.HTTPConnection(
                    target, port, timeout=PROBE_TIMEOUT_S, source_address=(PROBE_SOURCE, 0)
                )
                conn.request("GET", "/ping")
                response = conn.getresponse()
                body = response.read()
                conn.close()
                from_ray = response.getheader("Server") != RESPONDER_SERVER
                if from_ray and response.status in (200, 503) and "status" in json.loads(body or b"{}"):
                    return f"Ray Serve's listener answers /ping ({response.status})"
                last = f"HTTP {response.status}"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(PROBE_INTERVAL_S)
        return f"Ray Serve's listener still not answering after {deadline_s:g} s ({last}); handing over anyway"

    def hand_over(self, probe_deadline_s: float = 30.0) -> str:
        """Steer new connections to Ray Serve's listener, answer the queued ones, close. Returns what happened."""
        outcome = "closed (no steering)"
        if self.steering:
            outcome = self.probe_ray(probe_deadline_s)
            attach_steering(self.socket, handover_program())
            time.sleep(HANDSHAKE_SETTLE_S)
        self.shutdown()
        # Whatever reached this socket before the switch is answered here, never reset.
        self.socket.setblocking(False)
        answered = 0
        while True:
            try:
                request, client_address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                break
            request.setblocking(True)
            self.process_request(request, client_address)
            answered += 1
        self.server_close()
        return f"{outcome}; {answered} queued connection(s) answered before closing"


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    responder = LoadingResponder(host, port).start()
    print(f"listening steering={'yes' if responder.steering else 'no'}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "handover":
            deadline = float(command[1]) if len(command) > 1 else 30.0
            print(responder.hand_over(deadline), flush=True)
            return 0
        if command and command[0] == "close":
            break
    responder.shutdown()
    responder.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
