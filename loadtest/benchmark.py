"""CPU benchmark: the naive baseline against the Ray Serve app, on this machine, in one go.

``python -m loadtest.benchmark --preset tiny --size 128x128 --concurrency 1,4,16 --duration-s 30``

1. Direct pipeline call: ``serve_app.model.load_pipeline`` in this process, p50 of
   ``pipe(...)`` + JPEG encode at the benchmark size (no server at all), with torch's
   default threads and with one thread (what a Ray replica with ``num_cpus=1`` gets).
2. The baseline (``loadtest.baseline_server``: fp32, PNG, one request at a time) on a free
   loopback port, driven by ``python -m loadtest run`` at each concurrency, then stopped.
3. The app (``loadtest.app_server``, i.e. ``serve_app.app:build_app``) on a free loopback
   port, driven the same way, then stopped.
   During both runs a prober thread here GETs ``/ping`` ten times a second.
4. Prints and writes (``--out``): the ratios, a Markdown report, JSON, a combined plot, and
   each run's raw results.

A mixed-model workload (``--models tiny,tiny-xl [--mix 3:1]``): the app serves every model
named (``models=...``, one deployment each), each request names one of them with the given
shares (the load tool's ``--models``/``--mix``), the direct call is measured per model, and the
figures add each model's throughput, p50 and p95 at every level and its overhead against its
own direct call. The baseline serves one model, so it is left out.

Figures:
* throughput ratio app/baseline at each concurrency (target >= 2x at 16);
* Serve + HTTP overhead per request at concurrency 1: p50 client latency against the app
  minus p50 of the direct call (pipeline + encode), plus the same split by the server's own
  timings (client latency minus server inference+encode; minus server total);
* ``/ping`` p99 while the model is saturated (the highest concurrency level; target < 100 ms).

This module never imports locust or ray: both servers and the load tool are subprocesses.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import http.client
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.ports import free_port
from loadtest.stats import LevelSummary, mean_call_size, percentile
from loadtest.workload import parse_int_list, parse_model_mix, parse_models, parse_sizes

REPO_ROOT = Path(__file__).resolve().parents[1]


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": mem_gib,
        "gpu": "none",
        "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:  # which code was measured
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                            text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    for mod in ("torch", "diffusers", "ray", "locust"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod)
        except Exception:  # noqa: BLE001
            info[mod] = None
    return info


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


# -- 1. direct pipeline call ---------------------------------------------------------------

def measure_direct(preset: str, width: int, height: int, calls: int, cache_dir: str | None, threads: list[int | None]) -> dict[str, Any]:
    import torch

    from serve_app.model import load_pipeline, pin_execution_device

    kwargs: dict[str, Any] = dict(model=preset, device="cpu", dtype="float32")
    if cache_dir:
        kwargs["cache_dir"] = cache_dir
    # Pinned as the model replica's pipeline is (configure_pipeline), so that the overhead figure
    # measures Serve and HTTP, not diffusers' per-call device search that the service skips.
    pipe = pin_execution_device(load_pipeline(**kwargs))
    default_threads = torch.get_num_threads()
    out: dict[str, Any] = {"calls": calls, "width": width, "height": height}
    for n in threads:
        torch.set_num_threads(n or default_threads)
        pipe_ms, enc_ms = [], []
        for i in range(calls + 3):
            t0 = time.perf_counter()
            with torch.inference_mode():
                img = pipe(prompt="a photo of a red fox in the snow", num_inference_steps=1, guidance_scale=0.0,
                           width=width, height=height, generator=torch.Generator().manual_seed(i)).images[0]
            t1 = time.perf_counter()
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            t2 = time.perf_counter()
            if i >= 3:  # first calls warm up
                pipe_ms.append((t1 - t0) * 1000)
                enc_ms.append((t2 - t1) * 1000)
        key = f"threads_{n or default_threads}"
        out[key] = {
            "threads": n or default_threads,
            "pipeline_ms_p50": percentile(pipe_ms, 50),
            "pipeline_ms_p95": percentile(pipe_ms, 95),
            "encode_jpeg_ms_p50": percentile(enc_ms, 50),
            "pipeline_plus_encode_ms_p50": percentile([a + b for a, b in zip(pipe_ms, enc_ms)], 50),
        }
    torch.set_num_threads(default_threads)
    del pipe
    gc.collect()
    return out


# -- /ping prober ---------------------------------------------------------------------------

class PingProber(threading.Thread):
    """GET /ping at a fixed rate on one keep-alive connection; records (time, ms, status)."""

    def __init__(self, host: str, port: int, rate_hz: float = 10.0, timeout_s: float = 5.0):
        super().__init__(daemon=True)
        self.host, self.port, self.period, self.timeout = host, port, 1.0 / rate_hz, timeout_s
        self.samples: list[tuple[float, float, int]] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        nxt = time.monotonic()
        while not self._stop_evt.is_set():
            t_wall = time.time()
            t0 = time.perf_counter()
            status = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", "/ping")
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append((t_wall, (time.perf_counter() - t0) * 1000, status))
            nxt += self.period
            self._stop_evt.wait(max(0.0, nxt - time.monotonic()))
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=self.timeout + 1)

    def between(self, t0: float, t1: float) -> dict[str, Any]:
        sel = [s for s in self.samples if t0 <= s[0] <= t1]
        lats = [s[1] for s in sel]
        return {
            "probes": len(sel),
            "non_200": sum(1 for s in sel if s[2] != 200),
            "ms_p50": percentile(lats, 50),
            "ms_p99": percentile(lats, 99),
            "ms_max": max(lats) if lats else math.nan,
        }


# -- servers and load runs --------------------------------------------------------------------

def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before /ping answered 200")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/ping")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return time.monotonic() - t0
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"/ping on port {port} not 200 after {timeout}s")


def stop_server(proc: subprocess.Popen, grace: float = 60.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_load(label: str, port: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "loadtest", "run", "--target", "http", "--url", f"http://127.0.0.1:{port}",
           "--concurrency", args.concurrency, "--duration-s", str(args.duration_s), "--warmup-s", str(args.warmup_s),
           "--sizes", args.size, "--out", str(out), "--label", label, "--cooldown-s", str(args.cooldown_s)]
    if args.output_format:
        cmd += ["--output-format", args.output_format]
    if getattr(args, "models", None):  # a mixed-model workload: per-model figures in the summary
        cmd += ["--models", args.models] + (["--mix", args.mix] if getattr(args, "mix", None) else [])
    print(f"\n== {label}: {' '.join(cmd[1:])}", flush=True)
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)
    print(r.stdout, end="", flush=True)
    if r.returncode not in (0, 3):
        raise RuntimeError(f"load run for {label} failed with exit {r.returncode}")
    return json.loads((out / "summary.json").read_text())


def level_windows(raw_csv: Path) -> dict[int, tuple[float, float]]:
    wins: dict[int, tuple[float, float]] = {}
    for r in report.read_raw_csv(raw_csv):
        c = int(r["concurrency"])
        s, e = r["start"], r["start"] + r["latency_ms"] / 1000.0
        lo, hi = wins.get(c, (s, e))
        wins[c] = (min(lo, s), max(hi, e))
    return wins


def server_split(raw_csv: Path, concurrency: int) -> dict[str, float]:
    """p50 of client latency minus the server's own inference+encode / total, per request."""
    minus_work, minus_total = [], []
    for r in report.read_raw_csv(raw_csv):
        if int(r["concurrency"]) != concurrency or not r["ok"]:
            continue
        if r["server_inference_ms"] is not None and r["server_encode_ms"] is not None:
            minus_work.append(r["latency_ms"] - r["server_inference_ms"] - r["server_encode_ms"])
        if r["server_total_ms"] is not None:
            minus_total.append(r["latency_ms"] - r["server_total_ms"])
    return {"client_minus_server_inference_encode_ms_p50": percentile(minus_work, 50),
            "client_minus_server_total_ms_p50": percentile(minus_total, 50)}


def serve_target(label: str, cmd: list[str], port: int, args: argparse.Namespace, out: Path, env: dict[str, str]) -> dict[str, Any]:
    log_path = out / f"{label}-server.log"
    with log_path.open("w") as log:
        print(f"\n== starting {label}: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            ready_s = wait_ready(port, proc, args.start_timeout_s)
            print(f"   {label} ready after {ready_s:.1f}s (load average {os.getloadavg()[0]:.2f})", flush=True)
            prober = PingProber("127.0.0.1", port, rate_hz=args.ping_hz)
            prober.start()
            try:
                summary = run_load(label, port, args, out / label)
            finally:
                prober.stop()
        finally:
            stop_server(proc)
    wins = level_windows(out / label / "raw.csv")
    summary["ping"] = {str(c): prober.between(*w) for c, w in sorted(wins.items())}
    summary["ready_s"] = ready_s
    summary["server_cmd"] = cmd
    return summary


def _levels(summary: dict[str, Any]) -> list[LevelSummary]:
    return [LevelSummary(**lv) for lv in summary["levels"]]


def build_parser() -> argparse.ArgumentParser:
    """The options; none sets a batching or compile setting of its own (the app's per-device defaults
    hold unless --app-arg says otherwise: tests/deployments/test_batching_knobs.py)."""
    p = argparse.ArgumentParser(prog="python -m loadtest.benchmark", description="baseline vs Ray Serve app on this machine")
    p.add_argument("--preset", default="tiny", help="model preset (or local diffusers dir) for both servers")
    p.add_argument("--size", default="128x128", help="WxH of every request")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--duration-s", type=float, default=30.0, help="seconds per concurrency level")
    p.add_argument("--warmup-s", type=float, default=3.0, help="leading seconds of each level not measured")
    p.add_argument("--cooldown-s", type=float, default=1.0)
    p.add_argument("--output-format", choices=["jpeg", "png", "webp"], help="asked of the app (default: its default, jpeg); the baseline always sends PNG")
    p.add_argument("--direct-calls", type=int, default=30, help="direct pipeline calls measured per thread setting")
    p.add_argument("--ping-hz", type=float, default=10.0)
    p.add_argument("--start-timeout-s", type=float, default=240.0)
    p.add_argument("--cache-dir", default=os.environ.get("SDTURBO_CACHE_DIR"), help="preset cache (default: the service's)")
    p.add_argument("--app-arg", action="append", default=[], metavar="KEY=VALUE", help="extra build_app argument (repeatable)")
    p.add_argument("--models", help="NAME[,NAME...]: serve these presets together (instead of --preset) and load "
                   "them with a mixed-model workload; per-model figures are added (the baseline is left out)")
    p.add_argument("--mix", help="with --models: each model's share of the requests, e.g. 3:1 (default: equal)")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--skip-direct", action="store_true")
    p.add_argument("--out", default=f"results/benchmark-{time.strftime('%Y%m%d-%H%M%S')}")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    levels = parse_int_list(args.concurrency)
    (w, h), = parse_sizes(args.size)
    try:
        models = parse_models(args.models)
        parse_model_mix(models, args.mix)
    except ValueError as exc:  # a mix that does not fit the models (or comes without them)
        p.error(str(exc))
    # What is measured directly and served: the preset, or every model of a mixed workload.
    presets = models or [args.preset]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"SDTURBO_CACHE_DIR": args.cache_dir} if args.cache_dir else {}
    result: dict[str, Any] = {"machine": machine_info(), "command": "python -m loadtest.benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "preset": args.preset, "size": args.size, "concurrency": levels, "duration_s": args.duration_s,
                              "warmup_s": args.warmup_s, "app_args": args.app_arg}
    if models:
        result.update(models=models, mix=args.mix)
    t_begin = time.time()

    if not args.skip_direct:
        direct_per_model = {}
        for preset in presets:
            print(f"== direct pipeline call: {preset} {w}x{h}, {args.direct_calls} calls per thread setting", flush=True)
            direct_per_model[preset] = measure_direct(preset, w, h, args.direct_calls, args.cache_dir, [None, 1])
            print(json.dumps(direct_per_model[preset], indent=1), flush=True)
        result["direct"] = direct_per_model[presets[0]]
        if models:
            result["direct_per_model"] = direct_per_model

    series: dict[str, list[LevelSummary]] = {}
    if models and not args.skip_baseline:
        print("== the baseline serves one model: left out of a mixed-model run", flush=True)
    if not args.skip_baseline and not models:
        port = free_port()
        cmd = [sys.executable, "-m", "loadtest.baseline_server", "--model", args.preset, "--port", str(port),
               "--warmup-size", args.size] + (["--cache-dir", args.cache_dir] if args.cache_dir else [])
        result["baseline"] = serve_target("baseline", cmd, port, args, out, env)
        series["baseline (fp32, PNG, no batching)"] = _levels(result["baseline"])

    port = free_port()
    served = f"models={','.join(models)}" if models else f"model={args.preset}"
    cmd = [sys.executable, "-m", "loadtest.app_server", "--port", str(port), served, *args.app_arg]
    result["app"] = serve_target("app", cmd, port, args, out, env)
    series["Ray Serve app"] = _levels(result["app"])

    # -- figures ------------------------------------------------------------------------------
    figs: dict[str, Any] = {}
    app_lv = {lv.concurrency: lv for lv in series["Ray Serve app"]}
    if "baseline" in result:
        base_lv = {lv.concurrency: lv for lv in series["baseline (fp32, PNG, no batching)"]}
        figs["throughput_ratio_app_over_baseline"] = {
            str(c): (app_lv[c].throughput_img_s / base_lv[c].throughput_img_s) if base_lv[c].throughput_img_s else math.nan
            for c in levels}
        figs["p95_ratio_app_over_baseline"] = {
            str(c): (app_lv[c].latency_ms_p95 / base_lv[c].latency_ms_p95) if base_lv[c].latency_ms_p95 else math.nan
            for c in levels}
    c_min, c_max = min(levels), max(levels)
    split = server_split(out / "app" / "raw.csv", c_min)
    figs["overhead_at_concurrency"] = c_min
    figs.update(split)
    if "direct" in result and not models:
        direct_best = _direct_best(result["direct"])
        figs["direct_pipeline_plus_encode_ms_p50"] = direct_best
        figs["overhead_ms_p50_vs_direct"] = app_lv[c_min].latency_ms_p50 - direct_best
    if models:
        # Each model's share of every level, and its overhead against its own direct call.
        figs["per_model"] = report.per_model_figures(result["app"])
        for name, direct in result.get("direct_per_model", {}).items():
            at_min = figs["per_model"].get(name, {}).get(str(c_min))
            if at_min:
                at_min["direct_pipeline_plus_encode_ms_p50"] = _direct_best(direct)
                at_min["overhead_ms_p50_vs_direct"] = at_min["p50_ms"] - _direct_best(direct)
    # The batch sizes the device actually ran at the highest level (server-reported, per call).
    figs["mean_pipeline_call_at_max_concurrency"] = mean_call_size(app_lv[c_max].batch_size_hist)
    figs["mean_batch_per_request_at_max_concurrency"] = app_lv[c_max].batch_size_mean
    figs["ping_saturated_concurrency"] = c_max
    figs["ping_ms_p99_saturated_app"] = result["app"]["ping"].get(str(c_max), {}).get("ms_p99")
    if "baseline" in result:
        figs["ping_ms_p99_saturated_baseline"] = result["baseline"]["ping"].get(str(c_max), {}).get("ms_p99")
    result["figures"] = figs
    result["elapsed_s"] = time.time() - t_begin
    # other work on the machine skews every figure: record the load around the run
    result["machine"]["loadavg_1_5_15_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    # -- reports --------------------------------------------------------------------------------
    report.write_json(out / "benchmark.json", result)
    served_title = " + ".join(presets) + (f" mixed {args.mix or 'equally'}" if models else "")
    report.write_plot(out / "plot.png", series, title=f"{served_title} {args.size} on {result['machine']['cpus']} CPUs: baseline vs app")
    lines = [_figures_md(result), report.per_model_markdown(figs.get("per_model", {}), args.mix)]
    report.write_markdown(out / "benchmark.md", series, title=f"CPU benchmark: baseline vs Ray Serve app ({served_title}, {args.size})",
                          meta={"command": f"`{result['command']}`", "machine": _machine_line(result["machine"])},
                          extra="\n".join(lines))
    print("\n" + report.markdown_table(series))
    print("\n".join(lines))
    print(f"wrote {out / 'benchmark.md'} {out / 'benchmark.json'} {out / 'plot.png'}")
    return 0


def _direct_best(direct: dict[str, Any]) -> float:
    """The fastest thread setting's p50 of one direct pipeline call plus its JPEG encode."""
    return min(v["pipeline_plus_encode_ms_p50"] for k, v in direct.items() if k.startswith("threads_"))


def _machine_line(m: dict[str, Any]) -> str:
    return (f"{m['cpus']} CPUs ({m['cpu']}), {m['mem_gib']} GiB, GPU: {m['gpu']}; {m['date_utc']}; commit {m.get('git_commit')}; "
            f"torch {m['torch']}, diffusers {m['diffusers']}, ray {m['ray']}, locust {m['locust']}; "
            f"load average (1/5/15 min) before {m.get('loadavg_1_5_15')}, after {m.get('loadavg_1_5_15_end')}")


def _fmt(v: Any, nd: int = 1, suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{nd}f}{suffix}"


def _figures_md(r: dict[str, Any]) -> str:
    f = r["figures"]
    rows = ["| figure | measured | target |", "|---|---:|---:|"]
    for c, v in (f.get("throughput_ratio_app_over_baseline") or {}).items():
        rows.append(f"| throughput ratio app / baseline at concurrency {c} | {_fmt(v, 2, 'x')} | {'>= 2x' if c == '16' else ''} |")
    for c, v in (f.get("p95_ratio_app_over_baseline") or {}).items():
        rows.append(f"| p95 ratio app / baseline at concurrency {c} | {_fmt(v, 2, 'x')} | |")
    c1 = f["overhead_at_concurrency"]
    if "overhead_ms_p50_vs_direct" in f:
        rows.append(f"| Serve + HTTP overhead, p50 at concurrency {c1}: app latency - direct pipeline+encode "
                    f"({_fmt(f['direct_pipeline_plus_encode_ms_p50'])} ms) | {_fmt(f['overhead_ms_p50_vs_direct'], 1, ' ms')} | <= 15 ms |")
    for name, levels in (f.get("per_model") or {}).items():
        at_c1 = levels.get(str(c1), {})
        if "overhead_ms_p50_vs_direct" in at_c1:
            rows.append(f"| {name}: Serve + HTTP overhead, p50 at concurrency {c1} (mixed workload): its latency - its direct "
                        f"pipeline+encode ({_fmt(at_c1['direct_pipeline_plus_encode_ms_p50'])} ms) | "
                        f"{_fmt(at_c1['overhead_ms_p50_vs_direct'], 1, ' ms')} | |")
    rows.append(f"| same, from the server's timings: client latency - server inference - encode (queue + batch wait + transport) "
                f"| {_fmt(f['client_minus_server_inference_encode_ms_p50'], 1, ' ms')} | |")
    rows.append(f"| same: client latency - server total (HTTP to the ingress and back: Ray's proxy too if direct_ingress=false) | {_fmt(f['client_minus_server_total_ms_p50'], 1, ' ms')} | |")
    if "mean_pipeline_call_at_max_concurrency" in f:
        rows.append(f"| mean pipeline-call size at concurrency {f['ping_saturated_concurrency']} (calls; per request "
                    f"{_fmt(f['mean_batch_per_request_at_max_concurrency'], 2)}) | "
                    f"{_fmt(f['mean_pipeline_call_at_max_concurrency'], 2)} | >= 6 of 8 |")
    rows.append(f"| /ping p99 at concurrency {f['ping_saturated_concurrency']} (model saturated), app | {_fmt(f['ping_ms_p99_saturated_app'], 1, ' ms')} | < 100 ms |")
    if "ping_ms_p99_saturated_baseline" in f:
        rows.append(f"| /ping p99 at concurrency {f['ping_saturated_concurrency']}, baseline | {_fmt(f['ping_ms_p99_saturated_baseline'], 1, ' ms')} | |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
