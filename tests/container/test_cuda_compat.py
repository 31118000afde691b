"""CUDA forward compatibility at start (container/cuda_compat.py), on fake driver and compat files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONTAINER = Path(__file__).resolve().parents[2] / "container"
sys.path.insert(0, str(CONTAINER))
from cuda_compat import compat_driver_version, host_driver_version, library_path_with_compat  # noqa: E402

sys.path.remove(str(CONTAINER))

PROPRIETARY = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  Sun May 12 19:39:15 UTC 2024\nGCC version:  gcc 10\n"
OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  (dvs-builder@U16)  2025\n"
BASE_LD_LIBRARY_PATH = "/usr/local/nvidia/lib:/usr/local/nvidia/lib64"  # what nvidia/cuda images set


@pytest.fixture
def host(tmp_path):
    """Fake /proc/driver/nvidia/version and /usr/local/cuda/compat (with the 580 compat driver)."""
    compat = tmp_path / "compat"
    compat.mkdir()
    for name in ("libcuda.so", "libcuda.so.1", "libcuda.so.580.65.06", "libnvidia-ptxjitcompiler.so.580.65.06"):
        (compat / name).write_bytes(b"")
    version_file = tmp_path / "version"

    def with_driver(text: str | None):
        if text is not None:
            version_file.write_text(text)
        return {"version_file": version_file, "compat_dir": compat}

    return with_driver


@pytest.mark.parametrize("template", [PROPRIETARY, OPEN])
def test_older_host_driver_puts_compat_first(host, template):
    paths = host(template.format(v="535.183.01"))
    new_path, why = library_path_with_compat({"LD_LIBRARY_PATH": BASE_LD_LIBRARY_PATH}, **paths)
    assert new_path == f"{paths['compat_dir']}:{BASE_LD_LIBRARY_PATH}"
    assert "driver 535.183.01 is older than the CUDA forward-compatibility driver 580.65.06" in why


@pytest.mark.parametrize("driver", ["580.65.06", "580.95.05", "590.44.01"])
def test_same_or_newer_host_driver_changes_nothing(host, driver):
    assert library_path_with_compat({"LD_LIBRARY_PATH": BASE_LD_LIBRARY_PATH}, **host(PROPRIETARY.format(v=driver))) is None


def test_no_gpu_changes_nothing(host):
    assert library_path_with_compat({"LD_LIBRARY_PATH": BASE_LD_LIBRARY_PATH}, **host(None)) is None


def test_no_compat_package_changes_nothing(host, tmp_path):
    paths = host(PROPRIETARY.format(v="535.183.01"))
    paths["compat_dir"] = tmp_path / "absent"
    assert library_path_with_compat({}, **paths) is None


def test_applying_twice_is_a_no_op(host):
    """The entrypoint re-runs itself with the new path: the second run must not loop."""
    paths = host(PROPRIETARY.format(v="550.163.01"))
    new_path, _ = library_path_with_compat({}, **paths)
    assert new_path == str(paths["compat_dir"])
    assert library_path_with_compat({"LD_LIBRARY_PATH": new_path}, **paths) is None


def test_versions_are_compared_as_numbers_not_text(host):
    paths = host(PROPRIETARY.format(v="1000.1.1"))  # "1000" < "580" as text
    assert host_driver_version(paths["version_file"]) == "1000.1.1"
    assert compat_driver_version(paths["compat_dir"]) == "580.65.06"
    assert library_path_with_compat({}, **paths) is None


def test_the_entrypoint_reruns_itself_with_compat_first(host, tmp_path):
    """End to end through the entrypoint's start: the command it runs sees the new path."""
    paths = host(PROPRIETARY.format(v="535.183.01"))
    probe = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import entrypoint, cuda_compat;"
        f"cuda_compat.DRIVER_VERSION_FILE = __import__('pathlib').Path({str(paths['version_file'])!r});"
        f"cuda_compat.COMPAT_DIR = __import__('pathlib').Path({str(paths['compat_dir'])!r});"
        "sys.argv = [entrypoint.__file__, 'printenv', 'LD_LIBRARY_PATH']; entrypoint.main(sys.argv)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(CONTAINER)],
        capture_output=True, text=True, timeout=60, env={"LD_LIBRARY_PATH": BASE_LD_LIBRARY_PATH, "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == f"{paths['compat_dir']}:{BASE_LD_LIBRARY_PATH}", result.stderr
    assert "CUDA forward-compatibility" in result.stderr
