"""CUDA forward compatibility at container start, the way AWS's Deep Learning Containers do it.

torch 2.13's PyPI wheels are CUDA 13 builds: they need the CUDA 13 user-mode driver (libcuda,
driver branch >= 580). SageMaker's GPU hosts often run older data-center drivers (535/550 on the
AMIs SageMaker picks by default for g6/p5, and with `inference_ami_version`
al2-ami-sagemaker-inference-gpu-3-1). The CUDA base image ships the newer user-mode driver in
/usr/local/cuda/compat (package cuda-compat-13-0); putting that directory first on
LD_LIBRARY_PATH makes CUDA 13 work on those older kernel drivers (data-center GPUs only).

The rule, as in the DLC entrypoints: if the host's kernel driver (/proc/driver/nvidia/version)
is *older* than the compat driver (the version in /usr/local/cuda/compat/libcuda.so.<version>),
put the compat directory first; if it is the same or newer, or there is no GPU, change nothing
(the compat driver must never replace a newer host driver).

The dynamic loader reads LD_LIBRARY_PATH only when a process starts, so the entrypoint re-runs
itself with the new value before anything loads CUDA (and Ray's workers inherit it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
COMPAT_DIR = Path("/usr/local/cuda/compat")

# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  ..." or
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build ..."
_KERNEL_MODULE_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)")
_COMPAT_LIBCUDA = re.compile(r"^libcuda\.so\.(\d+(?:\.\d+)+)$")

Version = tuple[int, ...]


def _version(text: str) -> Version:
    return tuple(int(part) for part in text.split("."))


def host_driver_version(version_file: Path | None = None) -> str | None:
    """The host's NVIDIA kernel driver version, e.g. "535.183.01"; None without a GPU driver."""
    try:
        match = _KERNEL_MODULE_VERSION.search((version_file or DRIVER_VERSION_FILE).read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def compat_driver_version(compat_dir: Path | None = None) -> str | None:
    """The version of the forward-compatibility libcuda, e.g. "580.65.06"; None if absent."""
    try:
        names = [path.name for path in (compat_dir or COMPAT_DIR).iterdir()]
    except OSError:
        return None
    # libcuda.so.1 also matches the pattern; a driver version has three parts (580.65.06).
    versions = [match.group(1) for name in names if (match := _COMPAT_LIBCUDA.match(name))]
    versions = [version for version in versions if len(_version(version)) >= 2]
    return max(versions, key=_version) if versions else None


def library_path_with_compat(
    environ: Mapping[str, str], version_file: Path | None = None, compat_dir: Path | None = None
) -> tuple[str, str] | None:
    """``(new LD_LIBRARY_PATH, why)`` when the compat driver must come first; None: change nothing."""
    compat_dir = compat_dir or COMPAT_DIR
    host = host_driver_version(version_file)
    if host is None:
        return None  # no GPU (or no NVIDIA driver): nothing to be compatible with
    compat = compat_driver_version(compat_dir)
    if compat is None or _version(host) >= _version(compat):
        return None  # the host driver is new enough: never shadow it with an older libcuda
    entries = [entry for entry in environ.get("LD_LIBRARY_PATH", "").split(":") if entry]
    if entries and entries[0] == str(compat_dir):
        return None  # already first (this is the re-run)
    new_path = ":".join([str(compat_dir)] + [entry for entry in entries if entry != str(compat_dir)])
    why = (
        f"host NVIDIA driver {host} is older than the CUDA forward-compatibility driver {compat}: "
        f"{compat_dir} goes first on LD_LIBRARY_PATH"
    )
    return new_path, why
