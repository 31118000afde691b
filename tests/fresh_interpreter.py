"""Code run in a new Python interpreter: the test process has long imported torch, so which modules
a piece of the service imports shows only in a fresh one."""

from __future__ import annotations

import subprocess
import sys


def run_fresh(code: str, timeout: float = 180) -> str:
    """``code``'s standard output (stripped) from a new interpreter; fails with its stderr."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()
