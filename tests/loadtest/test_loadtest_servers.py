"""The naive baseline server, the one-shot CPU benchmark (baseline + Ray Serve app driven by
the tool over HTTP) and the GPU benchmark's CPU smoke path, all with the tiny preset."""
from __future__ import annotations

import base64
import http.client
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.ports import free_port
from tests.loadtest.loadtest_helpers import REPO_ROOT, run_tool, subprocess_env, wait_http_ok


def _post(port: int, body: bytes, ctype: str = "application/json", accept: str = "application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/predict", body=body, headers={"Content-Type": ctype, "Accept": accept})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_baseline_server_api_and_tool(model_cache, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.baseline_server", "--model", "tiny", "--port", str(port), "--cache-dir", model_cache],
        cwd=REPO_ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/ping", 120, proc)
        status, _, data = _post(port, json.dumps({"prompt": "a fox", "width": 64, "height": 64, "seed": 7,
                                                  "output_format": "jpeg"}).encode())
        assert status == 200
        doc = json.loads(data)
        assert doc["format"] == "png" and doc["batch_size"] == 1 and doc["seed"] == 7  # always PNG, never batched
        assert base64.b64decode(doc["image"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert set(doc["timings_ms"]) == {"queue", "inference", "encode", "total"}
        status, headers, data = _post(port, json.dumps({"prompt": "a fox", "width": 64, "height": 64}).encode(),
                                      accept="image/png")
        assert status == 200 and data[:4] == b"\x89PNG" and headers["X-Batch-Size"] == "1"
        assert _post(port, b"{not json")[0] == 400
        assert _post(port, json.dumps({"width": 64}).encode())[0] == 422
        assert _post(port, json.dumps({"prompt": "x", "width": 65}).encode())[0] == 422
        assert _post(port, b"prompt=x", ctype="text/plain")[0] == 415

        out = tmp_path / "bl"
        r = run_tool(["run", "--target", "http", "--url", f"http://127.0.0.1:{port}", "--path", "/invocations",
                      "--concurrency", "1,3", "--requests", "4", "--sizes", "64x64", "--out", str(out), "--quiet"])
        assert r.returncode == 0, r.stderr
        levels = json.loads((out / "summary.json").read_text())["levels"]
        assert [lv["ok"] for lv in levels] == [4, 4]
        assert all(lv["batch_size_hist"] == {"1": 4} for lv in levels)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_cpu_benchmark_drives_baseline_and_app(model_cache, tmp_path):
    """The one-shot benchmark, shortened: both servers start, the tool drives both over HTTP
    (the app is the real Ray Serve application with the tiny preset), figures are written."""
    out = tmp_path / "bench"
    r = subprocess.run(
        [sys.executable, "-m", "loadtest.benchmark", "--preset", "tiny", "--size", "64x64", "--concurrency", "1,4",
         "--duration-s", "3", "--warmup-s", "0.5", "--direct-calls", "3", "--cache-dir", model_cache,
         "--start-timeout-s", "240", "--out", str(out)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "benchmark.json").read_text())
    for target in ("baseline", "app"):
        levels = {lv["concurrency"]: lv for lv in res[target]["levels"]}
        assert set(levels) == {1, 4}
        assert all(lv["ok"] > 0 and lv["error_rate"] == 0 for lv in levels.values()), levels
        assert res[target]["ping"]["4"]["probes"] > 0 and res[target]["ping"]["4"]["non_200"] == 0
    app4 = {lv["concurrency"]: lv for lv in res["app"]["levels"]}[4]
    assert app4["batch_size_hist"] and max(int(k) for k in app4["batch_size_hist"]) <= 8
    assert set(app4["server_ms_p50"]) >= {"queue", "inference", "encode", "total"}
    f = res["figures"]
    assert set(f["throughput_ratio_app_over_baseline"]) == {"1", "4"}
    assert all(v > 0 and math.isfinite(v) for v in f["throughput_ratio_app_over_baseline"].values())
    assert math.isfinite(f["overhead_ms_p50_vs_direct"]) and f["ping_ms_p99_saturated_app"] > 0
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "benchmark.md").read_text()
    assert "throughput ratio app / baseline at concurrency 4" in md and "Ray Serve app" in md
    assert "throughput ratio app / baseline" in r.stdout  # the ratios are printed


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_gpu_benchmark_cpu_smoke_drives_the_real_service(model_cache, tmp_path):
    # The service serves both architectures and is loaded with a mixed-model workload (3:1): the
    # per-model figures come from the real app, in the same run (no second server).
    out = tmp_path / "gpu"
    r = subprocess.run([sys.executable, "-m", "loadtest.gpu_benchmark", "--model", "tiny", "--device", "cpu", "--quick",
                        "--models", "tiny,tiny-xl", "--mix", "3:1", "--cache-dir", model_cache, "--out", str(out)],
                       cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "gpu_benchmark.json").read_text())
    assert res["device"]["gpu"] == "none" and res["size"] == "64x64"
    # 1. The direct-call sweep, with the app's own max batch added: the ceiling.
    from serve_app.settings import Settings

    max_batch = Settings().max_batch_size
    assert res["app_settings"]["max_batch_size"] == max_batch and res["service_config"] == "fp32"
    assert [row["batch_size"] for row in res["batch_sweep"]["fp32"]] == sorted({1, 2, max_batch})
    assert res["ceiling"]["batch_size"] == max_batch and res["ceiling"]["images_s"] > 0
    # 2. The service itself (app_server -> Ray Serve -> HTTP -> the load tool), not an emulation.
    assert "loadtest.app_server" in res["servers"]["app"]["server_cmd"]
    levels = res["servers"]["app"]["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    assert all(lv["ok"] > 0 and lv["errors"] == 0 and lv["batch_size_hist"] for lv in levels)
    figures = res["figures"]
    assert figures["4"]["fraction_of_ceiling"] > 0 and figures["4"]["mean_call_size"] >= 1
    assert (out / "gpu_plot.png").exists() and (out / "app" / "raw.csv").exists()
    md = (out / "gpu_benchmark.md").read_text()
    assert "Batch sweep" in md and "The service" in md and "of the ceiling" in md
    # Each model's own throughput and latency at each level, in the JSON and the Markdown.
    assert "models=tiny,tiny-xl" in res["servers"]["app"]["server_cmd"] and res["mix"] == "3:1"
    per_model = res["figures_per_model"]
    assert set(per_model) == {"tiny", "tiny-xl"} and set(per_model["tiny"]) == {"1", "4"}
    assert all(f["requests"] > 0 and f["img_s"] > 0 and f["p50_ms"] <= f["p95_ms"] for f in per_model["tiny"].values())
    served = {name: sum(f["requests"] for f in levels.values()) for name, levels in per_model.items()}
    assert served["tiny"] > served["tiny-xl"] > 0  # the 3:1 shares
    assert "Per model (mixed-model workload, shares 3:1)" in md
    # 3. The cold start to /ping 200 and each model replica's own counters, read as the server stopped.
    replicas = res["servers"]["app"]["replicas"]["replicas"]
    assert len(replicas) == 1 and next(iter(replicas.values()))["device"] == "cpu"
    assert res["servers"]["app"]["ready_s"] > 0 and "Cold start" in md and "Model replicas" in md


@pytest.mark.timeout(300)
def test_gpu_benchmark_decoder_sweep_with_stage_profile(model_cache, tmp_path):
    out = tmp_path / "dec"
    r = subprocess.run([sys.executable, "-m", "loadtest.gpu_benchmark", "--model", "tiny", "--device", "cpu",
                        "--size", "64x64", "--configs", "fp32", "--batch-sizes", "1,2", "--iters", "2",
                        "--warmup-iters", "1", "--decoders", "full,tiny", "--skip-service", "--app-arg", "max_batch_size=2",
                        "--cache-dir", model_cache, "--out", str(out)],
                       cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "gpu_benchmark.json").read_text())
    assert list(res["batch_sweep"]) == ["fp32 full", "fp32 tiny"] and "servers" not in res
    for rows in res["batch_sweep"].values():
        assert [row["batch_size"] for row in rows] == [1, 2]
        for row in rows:
            prof = row["profile_ms"]
            assert all(prof[k] > 0 for k in ("text_encoder", "unet", "decode", "total"))
            assert math.isclose(sum(prof[k] for k in ("text_encoder", "unet", "decode", "other")), prof["total"])
    assert "[fp32 tiny] profile batch  2: text encoder" in r.stdout
    # TAESD's published architecture at 64x64: 1.22M decoder parameters.
    assert res["decoder_cost"]["fp32 tiny"]["decoder_params"] == 1_222_531
    assert 0 < res["decoder_cost"]["fp32 full"]["gflop_per_image"]
    assert "Where the time goes" in (out / "gpu_benchmark.md").read_text()


def test_gpu_benchmark_refuses_missing_cuda(tmp_path):
    r = subprocess.run([sys.executable, "-m", "loadtest.gpu_benchmark", "--device", "cuda", "--out", str(tmp_path)],
                       cwd=REPO_ROOT, env=subprocess_env(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no CUDA device" in r.stderr
    assert not (tmp_path / "gpu_benchmark.json").exists()


def test_configurations_and_the_services_configuration():
    from loadtest.gpu_benchmark import ceiling_of, config_of, make_configs
    from serve_app.settings import Settings

    cfgs = {c.name: c for c in make_configs(["fp32", "fp16-cl", "fp16-cl-compile"])}
    assert cfgs["fp32"].dtype == "float32" and not cfgs["fp32"].channels_last
    assert cfgs["fp16-cl"].dtype == "float16" and cfgs["fp16-cl"].channels_last and not cfgs["fp16-cl"].compile
    assert cfgs["fp16-cl-compile"].compile
    assert config_of(Settings(), "cuda") == "fp16" and config_of(Settings(), "cpu") == "fp32"
    assert config_of(Settings(dtype="bfloat16", channels_last=True, compile=True), "cuda") == "bf16-cl-compile"
    sweep = {"fp16": [{"batch_size": 4, "images_s": 30.0}, {"batch_size": 8, "images_s": 40.0}]}
    assert ceiling_of(sweep, "fp16", 8)["images_s"] == 40.0 and ceiling_of(sweep, "fp32", 8) is None


@pytest.mark.timeout(900)
def test_compile_start_measures_a_cold_then_a_warm_start_and_saves_the_artifacts(model_cache, tmp_path):
    # TAESD only, one bucket at 64x64: the cheapest real inductor compile on a CPU. The third start
    # (artifacts loaded into an empty directory) is left out here: it compiles TAESD's C++ again on a
    # CPU, and loading artifacts in a new process is tests/serve_app/model/test_compile_cache.py's.
    out, cache = tmp_path / "start", tmp_path / "inductor"
    r = subprocess.run([sys.executable, "-m", "loadtest.compile_start", "--model", "tiny", "--device", "cpu",
                        "--size", "64x64", "--buckets", "1", "--decoders", "tiny", "--cache-dir", model_cache,
                        "--compile-cache-dir", str(cache), "--starts", "cold,warm", "--out", str(out)],
                       cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=880)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "compile_start.json").read_text())
    cold, warm = res["cold"], res["warm"]
    assert set(cold["compile_s"]) == set(warm["compile_s"]) == {"tiny"}
    assert set(cold["per_shape_s"]["tiny"]) == {"1x64x64"}
    # The second process found the first one's compiled graphs in the shared directory.
    assert warm["decoders_s"] < cold["decoders_s"] and res["cache_bytes"] > 0
    assert (cold["cache_counters"]["fxgraph_cache_miss"], warm["cache_counters"]["fxgraph_cache_hit"]) == (1, 1)
    # The cold start saved the artifacts the third start would load: one file named by its key.
    saved = Path(cold["artifacts_saved"]["path"])
    assert saved.parent == Path(res["artifacts_dir"]) and saved.stat().st_size == cold["artifacts_saved"]["bytes"]
    assert "| warm (same cache dir) |" in (out / "compile_start.md").read_text()


def test_compile_start_reports_the_artifacts_loaded_start_beside_cold_and_warm():
    from loadtest.compile_start import render_md

    def run(load_s, compile_s, hits, misses):
        return {"import_and_load_s": load_s, "decoders_s": compile_s, "total_s": load_s + compile_s,
                "per_shape_s": {"tiny": {"1x64x64": compile_s}}, "load_avg_1min": [1.0, 1.5],
                "cache_counters": {"fxgraph_cache_hit": hits, "fxgraph_cache_miss": misses}}

    result = {"model": "tiny", "size": "64x64", "device": "cpu", "date_utc": "2026-12-05T00:00:00+00:00",
              "command": "python -m loadtest.compile_start", "mode": "default", "buckets": "1", "decoders": "tiny",
              "with_unet": False, "cold": {**run(6.0, 20.0, 0, 1), "artifacts_saved": {"bytes": 472008}},
              "warm": run(6.0, 3.0, 1, 0), "artifacts": {**run(6.5, 16.0, 1, 0), "artifacts": {
                  "status": "loaded", "count": 2, "artifacts": {"inductor": 1, "aot_autograd": 1}, "seconds": 0.21,
                  "key": "cpu-x86-64-avx512-torch2.13.0-cpu-1b44642b9087"}}}
    md = render_md(result)
    assert "| artifacts (empty cache dir, artifacts loaded) | 6.5 | 16.0 | 22.5 | 1, 0 | 1.0, 1.5 |" in md
    assert "Compile time artifacts / cold: 0.80x" in md and "472008 bytes" in md
    assert "| tiny | 1x64x64 | 20.0 | 3.0 | 16.0 |" in md
    # A run stopped after its first start still reports it.
    partial = {name: value for name, value in result.items() if name not in ("warm", "artifacts")}
    assert "| cold (empty cache dir) |" in render_md(partial) and "warm" not in render_md(partial)
