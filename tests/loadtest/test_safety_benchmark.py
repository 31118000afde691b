"""The safety-checker benchmark, shortened to one batch of one image on the CPU: it runs the
real-architecture preset through the service's path and diffusers', and writes its figures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.loadtest.loadtest_helpers import REPO_ROOT, subprocess_env


@pytest.mark.timeout(300)
def test_safety_benchmark_prints_and_writes_its_figures(model_cache, safety_preset_dir, tmp_path):
    out = tmp_path / "safety"
    r = subprocess.run([sys.executable, "-m", "loadtest.safety_benchmark", "--device", "cpu", "--size", "64x64",
                        "--batch-sizes", "1", "--iters", "1", "--warmup", "0", "--cache-dir", model_cache,
                        "--out", str(out)],
                       cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=290)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((out / "safety_benchmark.json").read_text())
    (row,) = result["rows"]
    assert row["batch"] == 1 and row["service_ms_p50"] > row["preprocess_ms_p50"] > 0 and row["diffusers_ms_p50"] > 0
    assert result["checker_params"] > 300_000_000 and result["dtype"] == "torch.float32"
    assert result["machine"]["loadavg_1_5_15"] and "| 1 |" in r.stdout
    assert (out / "safety_benchmark.md").read_text().startswith("# Safety checker cost per batch")
