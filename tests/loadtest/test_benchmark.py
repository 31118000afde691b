"""The CPU benchmark's mixed-model workload, with its servers and direct calls faked (the real
servers are driven in test_loadtest_servers.py): what it serves, what it asks of the load tool,
and the per-model figures it writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import benchmark, report
from loadtest.stats import summarise

pytestmark = pytest.mark.timeout(60)


def _records(model: str, concurrency: int, latency_ms: float, n: int = 10) -> list[dict]:
    return [{"target": "app", "concurrency": concurrency, "start": 100.0 + i * 0.1, "latency_ms": latency_ms, "status": 200,
             "ok": True, "batch_size": 1, "images": 1, "model": model, "server_inference_ms": 1.0, "server_encode_ms": 1.0,
             "server_total_ms": 2.0} for i in range(n)]


def fake_servers(monkeypatch, calls: list) -> None:
    def serve_target(label, cmd, port, args, out: Path, env):
        calls.append({"label": label, "cmd": cmd, "models": getattr(args, "models", None), "mix": getattr(args, "mix", None)})
        per_model = {name: [summarise(_records(name, c, latency), c) for c in (1, 4)]
                     for name, latency in (("tiny", 40.0), ("tiny-xl", 60.0))}
        records = [r for c in (1, 4) for name in per_model for r in _records(name, c, 50.0)]
        report.write_raw_csv(out / label / "raw.csv", records)
        levels = [summarise([r for r in records if r["concurrency"] == c], c).as_dict() for c in (1, 4)]
        return {"levels": levels, "per_model": {k: [s.as_dict() for s in v] for k, v in per_model.items()},
                "ping": {"1": {"ms_p99": 1.0}, "4": {"ms_p99": 2.0}}}

    def measure_direct(preset, width, height, calls_, cache_dir, threads):
        return {"threads_1": {"pipeline_plus_encode_ms_p50": {"tiny": 30.0, "tiny-xl": 45.0}[preset]}}

    monkeypatch.setattr(benchmark, "serve_target", serve_target)
    monkeypatch.setattr(benchmark, "measure_direct", measure_direct)


def test_a_mixed_model_run_serves_both_and_reports_each_models_figures(monkeypatch, tmp_path, capsys):
    calls: list = []
    fake_servers(monkeypatch, calls)
    out = tmp_path / "mix"
    assert benchmark.main(["--models", "tiny,tiny-xl", "--mix", "3:1", "--concurrency", "1,4", "--out", str(out)]) == 0
    # 1. One app serving both models, no baseline (it serves one model); the load tool asked for the mix.
    assert [c["label"] for c in calls] == ["app"]
    assert "models=tiny,tiny-xl" in calls[0]["cmd"] and (calls[0]["models"], calls[0]["mix"]) == ("tiny,tiny-xl", "3:1")
    # 2. Per-model figures in the JSON: throughput, p50, p95 at each level; the overhead against each model's own direct call.
    result = json.loads((out / "benchmark.json").read_text())
    per_model = result["figures"]["per_model"]
    assert set(per_model) == {"tiny", "tiny-xl"} and set(per_model["tiny"]) == {"1", "4"}
    assert per_model["tiny"]["4"]["p50_ms"] == pytest.approx(40.0) and per_model["tiny-xl"]["4"]["p95_ms"] == pytest.approx(60.0)
    assert per_model["tiny"]["4"]["img_s"] > 0
    assert per_model["tiny-xl"]["1"]["overhead_ms_p50_vs_direct"] == pytest.approx(60.0 - 45.0)
    assert set(result["direct_per_model"]) == {"tiny", "tiny-xl"} and "overhead_ms_p50_vs_direct" not in result["figures"]
    # 3. And in the Markdown report.
    md = (out / "benchmark.md").read_text()
    assert "Per model (mixed-model workload, shares 3:1)" in md and "| tiny-xl | 4 | 10 |" in md
    assert "tiny-xl: Serve + HTTP overhead" in md and "tiny + tiny-xl mixed 3:1" in md


def test_a_run_without_models_is_the_one_preset_against_the_baseline(monkeypatch, tmp_path):
    calls: list = []
    fake_servers(monkeypatch, calls)
    assert benchmark.main(["--preset", "tiny", "--concurrency", "1,4", "--out", str(tmp_path / "one")]) == 0
    assert [c["label"] for c in calls] == ["baseline", "app"] and "model=tiny" in calls[1]["cmd"]
    assert calls[1]["models"] is None
    result = json.loads((tmp_path / "one" / "benchmark.json").read_text())
    assert "per_model" not in result["figures"] and "overhead_ms_p50_vs_direct" in result["figures"]


def test_a_mix_without_models_or_of_the_wrong_length_is_refused(capsys):
    for argv in (["--mix", "1:1"], ["--models", "tiny,tiny-xl", "--mix", "1:1:1"]):
        with pytest.raises(SystemExit) as info:
            benchmark.main(argv)
        assert info.value.code == 2
    assert "shares for 2 models" in capsys.readouterr().err
