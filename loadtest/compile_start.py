"""Cold, warm and artifacts-loaded start of a replica's compiled model, with a persistent inductor cache.

Runs what a model replica runs at start-up (``serve_app.model.load_for_serving``: the pipeline
loaded, the decoders compiled with ``compile_decoder`` on, and with ``--with-unet`` the bucketed
UNet too) in a fresh Python process three times:

1. cold: an empty ``compile_cache_dir`` (a new container: every graph compiled); this run also
   saves the compile artifacts (``serve_app/model/compile_cache.py``) into a folder of its own,
   as ``python -m serve_app.build_compile_cache`` does (the save is timed apart, not in the start);
2. warm: the same directory again (a restarted container with a kept cache: inductor's FX graph
   cache and compiled kernels reused);
3. artifacts: a new, empty ``compile_cache_dir`` with those artifacts loaded into it before
   anything compiles (a SageMaker instance: a new disk, the artifacts shipped with the model).

Each run is its own process, so nothing is shared but the directories.

    # CPU (what was measured here)
    python -m loadtest.compile_start --model tiny --device cpu --size 128x128 --buckets 1,2,4,8 \\
        --out results/compile-start-cpu
    # H100
    python -m loadtest.compile_start --model sd-turbo-random --device cuda --size 512x512 \\
        --buckets 1,2,4,8,16 --mode reduce-overhead --out results/compile-start-h100

Writes ``compile_start.json`` (after each run, so a stopped run keeps the earlier ones) and
``compile_start.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_RESULT_PREFIX = "COMPILE_START_RESULT "


def child(args: argparse.Namespace) -> int:
    """One replica start-up: load, then compile as a replica does; prints a JSON result line."""
    started = time.perf_counter()
    from torch._dynamo.utils import counters

    from serve_app.model import load_for_serving, resolve_model, resolve_tiny_decoder, save_compile_artifacts
    from serve_app.settings import Settings

    width, height = (int(v) for v in args.size.lower().split("x"))
    settings = Settings.load(
        {
            "model": args.model,
            "device": args.device,
            "cache_dir": args.cache_dir,
            "decoders": args.decoders,
            "tiny_decoder": args.tiny_decoder,
            "compile": args.mode if args.with_unet else "off",
            "compile_decoder": args.mode,
            "compile_buckets": args.buckets,
            "compile_sizes": f"{width}x{height}",
            "compile_cache_dir": args.compile_cache_dir,
            "compile_artifacts": args.compile_artifacts or "off",
            "max_batch_size": max(int(b) for b in args.buckets.split(",")),
        },
        environ={},
    )
    # The model and TAESD as serve_app.app.resolve_sources finds them, without importing Ray (seconds).
    resolved = resolve_model(settings.model, None, settings.cache_dir)
    if "tiny" in settings.loaded_decoders:
        tiny = resolve_tiny_decoder(settings.tiny_decoder, "", resolved.local_dir, settings.cache_dir)
        resolved = dataclasses.replace(resolved, tiny_decoder=tiny)
    served = load_for_serving(resolved, **settings.serving_options)
    reports = dict(served.decoders.compile_reports)
    if served.unet_report is not None:
        reports["unet"] = served.unet_report
    done = time.perf_counter()
    compiling_s = sum(report.seconds for report in reports.values())
    result = {
        # Everything but compiling: imports, loading, the artifacts (if any) loaded into the cache.
        "import_and_load_s": done - started - compiling_s,
        "compile_s": {name: report.seconds for name, report in reports.items()},
        "per_shape_s": {name: report.per_shape_s for name, report in reports.items()},
        "decoders_s": compiling_s,  # the decoders' compile time, and the UNet's with --with-unet
        "total_s": done - started,
        "artifacts": served.artifacts.as_dict() if served.artifacts else None,
        # Where the compiled graphs came from: inductor's FX graph cache and AOTAutograd's cache.
        "cache_counters": {
            name: counters[group][name]
            for group, names in (("inductor", ("fxgraph_cache_hit", "fxgraph_cache_miss")),
                                 ("aot_autograd", ("autograd_cache_hit", "autograd_cache_miss")))
            for name in names
        },
    }
    if args.save_artifacts:
        saving = time.perf_counter()
        path = save_compile_artifacts(Path(args.save_artifacts), served.compile_key)
        result["artifacts_saved"] = {"path": str(path), "bytes": path.stat().st_size,
                                     "seconds": time.perf_counter() - saving}
    print(_RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_child(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "loadtest.compile_start", "--child", *argv],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"start-up run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_RESULT_PREFIX):])


# The three starts: what each finds in its inductor cache directory.
STARTS = {
    "cold": "empty cache dir",
    "warm": "same cache dir",
    "artifacts": "empty cache dir, artifacts loaded",
}


def render_md(r: dict[str, Any]) -> str:
    """The starts run so far (all three once the run is complete)."""
    runs = {kind: r[kind] for kind in STARTS if kind in r}
    lines = [f"# Compiled start-up: {r['model']} {r['size']} on {r['device']}", "",
             f"- **date**: {r['date_utc']}", f"- **command**: `{r['command']}`",
             f"- **mode**: {r['mode']}, buckets {r['buckets']}, decoders {r['decoders']}, UNet compiled: "
             f"{'yes' if r['with_unet'] else 'no'}", "",
             "| start | load s (imports, model, artifacts) | compile s | start-up total s "
             "| FX graph cache hits, misses | load average before, after |",
             "|---|---:|---:|---:|---|---|"]
    for kind, run in runs.items():
        load = run.get("load_avg_1min")
        counters = run.get("cache_counters", {})
        lines.append(f"| {kind} ({STARTS[kind]}) | {run['import_and_load_s']:.1f} | {run['decoders_s']:.1f} | "
                     f"{run['total_s']:.1f} | {counters.get('fxgraph_cache_hit', '?')}, "
                     f"{counters.get('fxgraph_cache_miss', '?')} | "
                     f"{f'{load[0]:.1f}, {load[1]:.1f}' if load else 'not recorded'} |")
    if "cold" in runs:
        lines.append("")
        for kind in ("warm", "artifacts"):
            if kind in runs:
                lines.append(f"Compile time {kind} / cold: {runs[kind]['decoders_s'] / runs['cold']['decoders_s']:.2f}x; "
                             f"start-up {kind} / cold: {runs[kind]['total_s'] / runs['cold']['total_s']:.2f}x  ")
    if "artifacts" in runs and runs["artifacts"].get("artifacts"):
        loaded = runs["artifacts"]["artifacts"]
        saved = runs.get("cold", {}).get("artifacts_saved", {})
        lines += ["", f"Artifacts: {loaded['status']} {loaded['count']} ({loaded['artifacts']}) in "
                      f"{loaded['seconds']:.2f} s, {saved.get('bytes', '?')} bytes, key `{loaded['key']}`"]
    lines += ["", "Per shape (batch x width x height, seconds; 3 calls each under CUDA graphs):", "",
              "| compiled | shape | " + " | ".join(f"{kind} s" for kind in runs) + " |",
              "|---|---|" + "---:|" * len(runs)]
    for name, shapes in runs.get("cold", {}).get("per_shape_s", {}).items():
        for shape in shapes:
            cells = " | ".join(f"{run['per_shape_s'].get(name, {}).get(shape, float('nan')):.1f}" for run in runs.values())
            lines.append(f"| {name} | {shape} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.compile_start", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="128x128")
    p.add_argument("--buckets", default="1,2,4,8")
    p.add_argument("--mode", default="default", help="compile_decoder mode (and the UNet's with --with-unet)")
    p.add_argument("--with-unet", action="store_true", help="also compile the UNet per bucket (the compile setting)")
    p.add_argument("--decoders", default="full", help="decoders setting: full, tiny or full,tiny")
    p.add_argument("--tiny-decoder", default="taesd-random")
    p.add_argument("--cache-dir", default="/tmp/sdc", help="preset cache")
    p.add_argument("--compile-cache-dir", help="inductor cache of the cold and warm runs (default: a fresh "
                                               "temporary directory), emptied first; the artifacts and the "
                                               "third run's cache go beside it (<dir>-artifacts, <dir>-fresh)")
    p.add_argument("--starts", default=",".join(STARTS),
                   help="which starts to run, in this order (artifacts needs cold, which saves them)")
    p.add_argument("--out", default=f"results/compile-start-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--save-artifacts", help=argparse.SUPPRESS)  # the child: save the artifacts here
    p.add_argument("--compile-artifacts", help=argparse.SUPPRESS)  # the child: load the artifacts from here
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    starts = [kind.strip() for kind in args.starts.split(",")]
    if not set(starts) <= set(STARTS) or ("artifacts" in starts and "cold" not in starts):
        p.error(f"--starts: a comma-separated choice of {', '.join(STARTS)}; artifacts needs cold")

    import datetime as dt
    import platform

    # 1. Build the presets first, so no run pays for it.
    from serve_app.model import ensure_preset

    if args.model in ("tiny", "sd-turbo-random"):
        ensure_preset(args.model, args.cache_dir)
    if "tiny" in args.decoders and args.tiny_decoder == "taesd-random":
        ensure_preset("taesd-random", args.cache_dir)
    # 2. Cold: an empty cache directory, the artifacts saved. 3. Warm: the same directory again, new
    #    process. 4. Artifacts: another empty directory, the cold run's artifacts loaded into it.
    compile_cache = Path(args.compile_cache_dir or tempfile.mkdtemp(prefix="inductor-cache-"))
    artifacts_dir = compile_cache.with_name(compile_cache.name + "-artifacts")
    fresh_cache = compile_cache.with_name(compile_cache.name + "-fresh")
    for folder in (compile_cache, artifacts_dir, fresh_cache):
        shutil.rmtree(folder, ignore_errors=True)
    forwarded = ["--model", args.model, "--device", args.device, "--size", args.size, "--buckets", args.buckets,
                 "--mode", args.mode, "--decoders", args.decoders, "--tiny-decoder", args.tiny_decoder,
                 "--cache-dir", args.cache_dir]
    forwarded += ["--with-unet"] if args.with_unet else []
    per_start = {
        "cold": ["--compile-cache-dir", str(compile_cache), "--save-artifacts", str(artifacts_dir)],
        "warm": ["--compile-cache-dir", str(compile_cache)],
        "artifacts": ["--compile-cache-dir", str(fresh_cache), "--compile-artifacts", str(artifacts_dir)],
    }
    result: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "command": "python -m loadtest.compile_start " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model, "device": args.device, "size": args.size, "mode": args.mode,
        "buckets": args.buckets, "decoders": args.decoders, "with_unet": args.with_unet,
        "compile_cache_dir": str(compile_cache), "artifacts_dir": str(artifacts_dir),
        "fresh_compile_cache_dir": str(fresh_cache),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind, extra in ((kind, per_start[kind]) for kind in STARTS if kind in starts):
        print(f"== {kind} start ({STARTS[kind]}: {extra[1]})", flush=True)
        # The machine may be shared: its load before and after each run goes into the result.
        load_before = os.getloadavg()[0]
        result[kind] = run_child(forwarded + extra)
        result[kind]["load_avg_1min"] = [load_before, os.getloadavg()[0]]
        print(f"   {kind}: load {result[kind]['import_and_load_s']:.1f} s, compile {result[kind]['decoders_s']:.1f} s",
              flush=True)
        if kind in ("cold", "warm"):
            result["cache_bytes"] = sum(f.stat().st_size for f in compile_cache.rglob("*") if f.is_file())
        # Written after every start: a run stopped part-way (a GPU run's phase budget) keeps the earlier ones.
        (out / "compile_start.json").write_text(json.dumps(result, indent=2))
        (out / "compile_start.md").write_text(render_md(result))
    print((out / "compile_start.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
