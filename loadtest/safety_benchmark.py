"""What the image safety checker costs per batch.

``python -m loadtest.safety_benchmark --device cpu --batch-sizes 1,4 --iters 3 --out results/safety-cpu``

Builds (or reuses) the ``random`` safety-checker preset, the published CLIP ViT-L/14 checker
architecture with random weights (the cost is the architecture's, whatever the weights), and
times, per batch of generated-size images (float in [0, 1] on the device, as the pipeline leaves
them):

* ``service``: what a model replica runs, ``ImageSafetyChecker.screen``: CLIP preprocessing in
  torch on the device, the vision tower, the decision, the black-out; ending in one host sync
  (the flags), as the replica's uint8 copy would;
* of which ``preprocess``: the torch preprocessing alone;
* ``diffusers``: diffusers' own path for comparison: float images to 8-bit PIL, the CLIP image
  processor per image on the CPU, then ``StableDiffusionSafetyChecker.forward``.

Each figure is the median of ``--iters`` timed calls after ``--warmup`` untimed ones, the three
paths taking turns (a shared machine's load then weighs on all of them alike). Prints a
Markdown table and writes ``safety_benchmark.json`` and ``safety_benchmark.md`` to ``--out``.
Needs torch, diffusers and ``serve_app.model``; not Ray, not Locust.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.benchmark import machine_info
from loadtest.gpu_benchmark import device_info
from loadtest.stats import percentile
from loadtest.workload import parse_int_list, parse_sizes


def timed_round_robin(fns: dict[str, Callable[[], Any]], iters: int, warmup: int,
                      sync: Callable[[], None]) -> dict[str, list[float]]:
    """Milliseconds of ``iters`` calls of each function after ``warmup`` untimed ones, the
    functions taking turns, so a change in machine load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + iters):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            sync()
            if round_ >= warmup:
                times[name].append((time.perf_counter() - started) * 1000.0)
    return times


def checker_paths(checker, processor, images, device: str, dtype) -> dict[str, Callable[[], Any]]:
    """The three timed paths for one batch of ``images`` (N, 3, H, W in [0, 1] on ``device``)."""
    import numpy as np
    import torch
    from PIL import Image

    seeds = list(range(images.shape[0]))

    def service():
        checker.screen(images.clone(), seeds).tolist()  # .tolist(): the host sync a replica makes

    def preprocess():
        checker.preprocessing(images)

    def diffusers_path():
        arrays = (images.float().permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
        clip_input = processor([Image.fromarray(a) for a in arrays], return_tensors="np").pixel_values
        with torch.inference_mode():
            checker.model(clip_input=torch.from_numpy(np.stack(clip_input)).to(device, dtype), images=arrays)

    return {"service": service, "preprocess": preprocess, "diffusers": diffusers_path}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import CLIPImageProcessor

    from serve_app.model.resolving import resolve_safety_checker
    from serve_app.model.safety import ImageSafetyChecker

    # 1. The checker of the real architecture, in the dtype a replica would give it.
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"auto": torch.float16 if args.device.startswith("cuda") else torch.float32,
             "float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    resolved = resolve_safety_checker("random", "", args.cache_dir)
    checker = ImageSafetyChecker.load(resolved, args.device, dtype)
    processor = CLIPImageProcessor.from_pretrained(resolved.preprocessor_dir)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    width, height = parse_sizes(args.size)[0]
    generator = torch.Generator(device="cpu").manual_seed(0)

    # 2. Each batch size: the service's path, its preprocessing alone, diffusers' path.
    rows = []
    for batch in parse_int_list(args.batch_sizes):
        images = torch.rand(batch, 3, height, width, generator=generator).to(args.device)
        fns = checker_paths(checker, processor, images, args.device, dtype)
        row: dict[str, Any] = {"batch": batch}
        for name, times in timed_round_robin(fns, args.iters, args.warmup, sync).items():
            row[f"{name}_ms_p50"] = percentile(times, 50)
            row[f"{name}_ms_all"] = times
        row["service_ms_per_image"] = row["service_ms_p50"] / batch
        rows.append(row)
        print(f"batch {batch}: service {row['service_ms_p50']:.1f} ms (preprocess {row['preprocess_ms_p50']:.1f}), "
              f"diffusers {row['diffusers_ms_p50']:.1f} ms", flush=True)
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    return {"rows": rows, "dtype": str(dtype), "peak_mib": peak, "threads": torch.get_num_threads(),
            "checker_params": sum(p.numel() for p in checker.model.parameters())}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| batch | service: screen ms (p50) | per image ms | of which preprocessing ms | diffusers PIL path ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['batch']} | {row['service_ms_p50']:.1f} | {row['service_ms_per_image']:.1f} | "
                     f"{row['preprocess_ms_p50']:.1f} | {row['diffusers_ms_p50']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.safety_benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                   help="auto: float16 on cuda, float32 on cpu (what a replica uses)")
    p.add_argument("--size", default="512x512", help="WxH of the generated images (default 512x512)")
    p.add_argument("--batch-sizes", default="1,4,8")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--cache-dir", default=None, help="where the preset is built (default: the service's cache_dir)")
    p.add_argument("--out", default="results/safety")
    args = p.parse_args(argv)
    if args.cache_dir is None:
        from serve_app.settings import Settings

        args.cache_dir = Settings.load().cache_dir

    result = {
        "command": "python -m loadtest.safety_benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "device": device_info(args.device),
        **measure(args),
    }
    result["machine"]["loadavg_1_5_15_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    report.write_json(out / "safety_benchmark.json", result)
    table = markdown(result)
    header = (f"# Safety checker cost per batch ({args.size}, {args.device}, {result['dtype']}, "
              f"{result['threads']} threads)\n\n- **command**: `{result['command']}`\n"
              f"- **machine**: {result['machine']}\n- **device**: {result['device']}\n\n")
    (out / "safety_benchmark.md").write_text(header + table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
