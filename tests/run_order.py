"""The order test files are handed to pytest-xdist's workers: the long ones first, the ones that
mostly wait beside the ones that keep the CPUs busy.

pyproject's addopts run the suite on two workers with ``--dist loadfile`` (a file's tests stay on
one worker, so module fixtures such as the built image or a live app are made once) and
``--no-loadscope-reorder``: a worker is handed the next file in this order when two or fewer of
its own tests are left (xdist's heuristic). xdist's default order (files with the most tests first) left long files with few tests (the
soak, the API contract) for the end, where one worker ran them alone for minutes while the others
sat idle. So:

1. files with a test marked ``integration`` (a Ray app, a container, a server on loopback: the
   long ones) go first, and the unit-test files fill the end;
2. among those, the files marked ``mostly_waiting`` (most of their time is spent waiting on a
   container's processes, chaos watch windows, Terraform's provider polling moto) alternate with
   the others, so that two of them rarely run at once while both cores have little to do. The
   Terraform file alone keeps 0.8 of the two cores busy (134 CPU-seconds in 175 s); in collection
   order it followed the entrypoint file and ran beside the image file for 140 s.

Otherwise collection order is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, zip_longest

import pytest


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def long_files_first(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """``items`` by file: integration files first, mostly-waiting ones alternating with the rest."""
    files = list(dict.fromkeys(_file(item) for item in items))
    long_files = {_file(item) for item in items if item.get_closest_marker("integration")}
    waiting = {_file(item) for item in items if item.get_closest_marker("mostly_waiting")} & long_files
    busy = [path for path in files if path in long_files and path not in waiting]
    alternated = [path for path in chain(*zip_longest([p for p in files if p in waiting], busy)) if path is not None]
    rank = {path: i for i, path in enumerate(alternated + [p for p in files if p not in long_files])}
    return sorted(items, key=lambda item: rank[_file(item)])
