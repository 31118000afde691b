"""tests/run_order.py: files with an integration test go first, the mostly-waiting ones alternating
with the rest; every other order is kept."""

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
    mostly_waiting: bool = False

    def get_closest_marker(self, name: str):
        return object() if getattr(self, name, False) else None


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


def test_mostly_waiting_files_alternate_with_the_busy_ones():
    items = [
        FakeItem("tests/w1.py::t", integration=True, mostly_waiting=True),
        FakeItem("tests/w2.py::t", integration=True, mostly_waiting=True),
        FakeItem("tests/unit.py::t"),
        FakeItem("tests/w3.py::t", integration=True, mostly_waiting=True),
        FakeItem("tests/b1.py::t", integration=True),
        FakeItem("tests/w2.py::u", integration=True, mostly_waiting=True),
        FakeItem("tests/b2.py::t", integration=True),
        FakeItem("tests/waiting_unit.py::t", mostly_waiting=True),  # not long: stays with the units
    ]
    files = list(dict.fromkeys(item.nodeid.split("::", 1)[0] for item in long_files_first(items)))
    assert files == [
        "tests/w1.py", "tests/b1.py", "tests/w2.py", "tests/b2.py", "tests/w3.py", "tests/unit.py", "tests/waiting_unit.py",
    ]


# The files whose tests mostly wait: on containers (chaos watch windows, start-up deadlines) and
# on Terraform's provider polling moto (40 s for one bucket's lifecycle rules alone).
MOSTLY_WAITING = {"tests/container/test_entrypoint.py", "tests/container/test_image.py", "tests/infra/test_terraform_moto.py"}


def test_the_suite_alternates_its_mostly_waiting_files(request):
    # This very session: those files (as many as it collected) are marked, and no two are neighbours.
    files = list(dict.fromkeys(item.nodeid.split("::", 1)[0] for item in request.session.items))
    waiting = {item.nodeid.split("::", 1)[0] for item in request.session.items if item.get_closest_marker("mostly_waiting")}
    assert waiting == MOSTLY_WAITING & set(files)
    assert all(not (a in waiting and b in waiting) for a, b in zip(files, files[1:])), files


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
