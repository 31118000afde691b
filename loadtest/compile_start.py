"""Cold and warm start of a replica's compiled decoders, with a persistent inductor cache.

Runs what a model replica runs at start-up (``load_pipeline`` + ``prepare_decoders`` with
``compile_decoder`` on, and with ``--with-unet`` the bucketed UNet's ``compile_unet``) in a fresh Python process twice against the same ``compile_cache_dir``:
first with the directory empty (a new container: every graph compiled), then again (a
restarted container: inductor's FX graph cache and compiled kernels reused). Each run is its own
process, so nothing is shared but the directory.

    # CPU (what was measured here)
    python -m loadtest.compile_start --model tiny --device cpu --size 128x128 --buckets 1,2,4,8 \\
        --out results/compile-start-cpu
    # H100
    python -m loadtest.compile_start --model sd-turbo-random --device cuda --size 512x512 \\
        --buckets 1,2,4,8,16 --mode reduce-overhead --out results/compile-start-h100

Writes ``compile_start.json`` and ``compile_start.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
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
    """One replica start-up: load, then build (compile) the decoders; prints a JSON result line."""
    started = time.perf_counter()
    from serve_app.model import (
        compile_unet,
        configure_pipeline,
        load_pipeline,
        prepare_decoders,
        resolve_model,
        resolve_tiny_decoder,
    )
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
            "max_batch_size": max(int(b) for b in args.buckets.split(",")),
        },
        environ={},
    )
    resolved = resolve_model(settings.model, None, settings.cache_dir)
    tiny = None
    if "tiny" in settings.loaded_decoders:
        tiny = resolve_tiny_decoder(settings.tiny_decoder, "", resolved.local_dir, settings.cache_dir)
    pipe = load_pipeline(resolved=resolved, device=settings.device, dtype=settings.dtype)
    loaded = time.perf_counter()
    configure_pipeline(pipe, compile_mode=settings.unet_compile_mode, buckets=settings.batch_buckets,
                       sizes=settings.compiled_sizes)
    decoders = prepare_decoders(pipe, tiny, **settings.decoder_options)
    reports = dict(decoders.compile_reports)
    unet = compile_unet(pipe)  # the replica's order: the decoders (and the compile cache) first
    if unet is not None:
        reports["unet"] = unet
    done = time.perf_counter()
    result = {
        "import_and_load_s": loaded - started,
        "compile_s": {name: report.seconds for name, report in reports.items()},
        "per_shape_s": {name: report.per_shape_s for name, report in reports.items()},
        "decoders_s": done - loaded,
        "total_s": done - started,
    }
    print(_RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_child(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "loadtest.compile_start", "--child", *argv],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"start-up run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_RESULT_PREFIX):])


def render_md(r: dict[str, Any]) -> str:
    lines = [f"# Compiled decoder start-up: {r['model']} {r['size']} on {r['device']}", "",
             f"- **date**: {r['date_utc']}", f"- **command**: `{r['command']}`",
             f"- **mode**: {r['mode']}, buckets {r['buckets']}, decoders {r['decoders']}", "",
             "| start | model load s | decoder compile s | start-up total s | load average before, after |",
             "|---|---:|---:|---:|---|"]
    for kind in ("cold", "warm"):
        run = r[kind]
        load = run.get("load_avg_1min")
        lines.append(f"| {kind} ({'empty' if kind == 'cold' else 'same'} cache dir) | {run['import_and_load_s']:.1f} | "
                     f"{run['decoders_s']:.1f} | {run['total_s']:.1f} | "
                     f"{f'{load[0]:.1f}, {load[1]:.1f}' if load else 'not recorded'} |")
    lines += ["", f"Compile time warm / cold: {r['warm']['decoders_s'] / r['cold']['decoders_s']:.2f}x", "",
              "Per shape (batch x width x height, seconds, 3 calls each): ",
              "", "| decoder | shape | cold s | warm s |", "|---|---|---:|---:|"]
    for name, shapes in r["cold"]["per_shape_s"].items():
        for shape, cold_s in shapes.items():
            lines.append(f"| {name} | {shape} | {cold_s:.1f} | {r['warm']['per_shape_s'][name][shape]:.1f} |")
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
    p.add_argument("--compile-cache-dir", help="inductor cache to use (default: a fresh temporary directory); "
                                               "emptied before the cold run")
    p.add_argument("--out", default=f"results/compile-start-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    import datetime as dt
    import platform

    # 1. Build the presets first, so neither run pays for it.
    from serve_app.model import ensure_preset

    if args.model in ("tiny", "sd-turbo-random"):
        ensure_preset(args.model, args.cache_dir)
    if "tiny" in args.decoders and args.tiny_decoder == "taesd-random":
        ensure_preset("taesd-random", args.cache_dir)
    # 2. Cold: an empty cache directory. 3. Warm: the same directory again, new process.
    compile_cache = Path(args.compile_cache_dir or tempfile.mkdtemp(prefix="inductor-cache-"))
    shutil.rmtree(compile_cache, ignore_errors=True)
    forwarded = ["--model", args.model, "--device", args.device, "--size", args.size, "--buckets", args.buckets,
                 "--mode", args.mode, "--decoders", args.decoders, "--tiny-decoder", args.tiny_decoder,
                 "--cache-dir", args.cache_dir, "--compile-cache-dir", str(compile_cache)]
    forwarded += ["--with-unet"] if args.with_unet else []
    result: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "command": "python -m loadtest.compile_start " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model, "device": args.device, "size": args.size, "mode": args.mode,
        "buckets": args.buckets, "decoders": args.decoders, "with_unet": args.with_unet,
        "compile_cache_dir": str(compile_cache),
    }
    for kind in ("cold", "warm"):
        print(f"== {kind} start (cache {compile_cache})", flush=True)
        # The machine may be shared: its load before and after each run goes into the result.
        load_before = os.getloadavg()[0]
        result[kind] = run_child(forwarded)
        result[kind]["load_avg_1min"] = [load_before, os.getloadavg()[0]]
        print(f"   {kind}: load {result[kind]['import_and_load_s']:.1f} s, decoders {result[kind]['decoders_s']:.1f} s",
              flush=True)
    result["cache_bytes"] = sum(f.stat().st_size for f in compile_cache.rglob("*") if f.is_file())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_start.json").write_text(json.dumps(result, indent=2))
    (out / "compile_start.md").write_text(render_md(result))
    print((out / "compile_start.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
