"""Network audit for the image test: every Python process that imports this records its socket
connects and name lookups (Python audit events) to NETAUDIT_LOG_DIR/<pid>.jsonl.

Mounted into the container and put on PYTHONPATH, so the entrypoint, the port responder and every
Ray worker (they inherit the environment) load it. The test then checks that serving a model from
/opt/ml/model with SDTURBO_OFFLINE=1 tried to reach nothing but the container itself.
"""

import json
import os
import socket
import sys

_log_dir = os.environ.get("NETAUDIT_LOG_DIR")


def _record(entry: dict) -> None:
    with open(os.path.join(_log_dir, f"{os.getpid()}.jsonl"), "a") as log:
        log.write(json.dumps(entry) + "\n")


def _hook(event: str, args: tuple) -> None:
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            _record({"event": "connect", "host": str(address[0]), "port": address[1]})
    elif event == "socket.getaddrinfo":
        _record({"event": "getaddrinfo", "host": str(args[0]), "port": str(args[1])})
    elif event == "socket.gethostbyname":
        _record({"event": "gethostbyname", "host": str(args[0])})


def _command_line() -> list[str]:
    with open("/proc/self/cmdline", "rb") as cmdline:
        return cmdline.read().decode(errors="replace").split("\0")[:4]


if _log_dir:
    _record({"event": "start", "argv": _command_line()})
    sys.addaudithook(_hook)
