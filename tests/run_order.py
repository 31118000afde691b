"""The order test files are handed to pytest-xdist's workers: the long ones first.

pyproject's addopts run the suite on two workers with ``--dist loadfile`` (a file's tests stay on
one worker, so module fixtures such as the built image or a live app are made once) and
``--no-loadscope-reorder``: a worker takes the next file in collection order when it is nearly
done with its own. xdist's default order (files with the most tests first) left long files with few
tests (the soak, the API contract) for the end, where one worker ran them alone for minutes while
the others sat idle. So files with a test marked ``integration`` (a Ray app, a container, a server
on loopback: the long ones) go first, in their usual order, and the unit-test files fill the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest


def long_files_first(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """``items`` with every file holding an integration test moved ahead; order kept otherwise."""
    long_files = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("integration")}
    return sorted(items, key=lambda item: item.nodeid.split("::", 1)[0] not in long_files)
