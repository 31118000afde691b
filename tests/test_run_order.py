"""tests/run_order.py: files with an integration test go first, every other order is kept."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.run_order import long_files_first


@dataclass
class FakeItem:
    nodeid: str
    integration: bool = False

    def get_closest_marker(self, name: str):
        return object() if name == "integration" and self.integration else None


def test_files_with_an_integration_test_move_ahead_whole_and_in_order():
    items = [
        FakeItem("tests/a/test_unit.py::test_one"),
        FakeItem("tests/b/test_live.py::test_unit_part"),
        FakeItem("tests/b/test_live.py::test_app", integration=True),
        FakeItem("tests/c/test_unit.py::test_two"),
        FakeItem("tests/d/test_image.py::test_image", integration=True),
    ]
    assert [item.nodeid for item in long_files_first(items)] == [
        "tests/b/test_live.py::test_unit_part",
        "tests/b/test_live.py::test_app",
        "tests/d/test_image.py::test_image",
        "tests/a/test_unit.py::test_one",
        "tests/c/test_unit.py::test_two",
    ]


def test_the_suite_is_collected_long_files_first(request):
    # This very session: no unit-only file comes before the last file with an integration test.
    files = list(dict.fromkeys(item.nodeid.split("::", 1)[0] for item in request.session.items))
    long_files = {item.nodeid.split("::", 1)[0] for item in request.session.items if item.get_closest_marker("integration")}
    if long_files:
        last_long = max(files.index(path) for path in long_files)
        assert all(path in long_files for path in files[: last_long + 1]), files


def test_xdist_hands_out_files_in_this_order():
    # Without --no-loadscope-reorder xdist sorts files by their number of tests and the order above
    # is lost; with another --dist a file's module fixtures (the image, a live app) would be made
    # once per worker.
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    addopts = shlex.split(re.search(r'^addopts = "(.*)"$', pyproject, re.M).group(1))
    assert addopts[addopts.index("--dist") + 1] == "loadfile"
    assert "--no-loadscope-reorder" in addopts
