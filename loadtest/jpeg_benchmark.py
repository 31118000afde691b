"""JPEG on the GPU (nvjpeg, one batched call) against the CPU path (PIL, as the replica encodes).

    python -m loadtest.jpeg_benchmark --model sd-turbo-random --device cuda --size 512x512 \\
        --batch-sizes 1,16,32 --out results/jpeg-h200

Per batch size, on the same pixels (uint8 on the device, as the generator leaves them):

* ``gpu_ms``: ``serve_app.model.jpeg.encode_jpeg_on_device`` for the whole batch, its bytes on the
  host (only where CUDA and a torchvision that imports are present; otherwise recorded as unavailable);
* ``cpu_serial_ms``: ``serve_app.encoding.encode_image`` one image after another (one encode thread);
* ``cpu_pool_ms``: the same on a pool of 4 threads, as the model replica encodes beside the next call;
* bytes per image of each, the JPEG contract (``jpeg_problems``) of every GPU image, and the mean
  difference of the decoded images (8-bit levels).

Two kinds of pixels: the pipeline's own images (the service's generator; with random-weight presets
they are noise-like, the hardest case for JPEG) and a smooth synthetic image (gradients).

Writes ``jpeg_benchmark.json`` and ``jpeg_benchmark.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loadtest.workload import parse_int_list, parse_sizes


def pipeline_pixels(model: str, device: str, cache_dir: str | None, batch: int, width: int, height: int):
    """uint8 NCHW pixels of ``batch`` images from the service's generator (on ``device``)."""
    import torch

    from serve_app.batching import GenerationSpec
    from serve_app.model import SDTurboGenerator, load_pipeline, resolve_model
    from serve_app.model.sources import DEFAULT_CACHE_DIR

    pipe = load_pipeline(resolved=resolve_model(model, None, cache_dir or DEFAULT_CACHE_DIR), device=device,
                         dtype="auto")
    images = SDTurboGenerator(pipe).generate(
        [GenerationSpec(prompt=f"a photo of a lighthouse {i}", seed=i, width=width, height=height) for i in range(batch)]
    )
    import numpy as np

    arrays = np.stack([np.asarray(g.image) for g in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous().to(device)


def smooth_pixels(batch: int, width: int, height: int, device: str):
    import torch

    x = torch.linspace(0, 255, width).view(1, -1).expand(height, width)
    y = torch.linspace(0, 255, height).view(-1, 1).expand(height, width)
    images = [torch.stack([x, y, torch.full((height, width), (37.0 * i) % 256)]) for i in range(batch)]
    return torch.stack(images).round().to(torch.uint8).to(device)


def timed(fn, iters: int) -> tuple[float, Any]:
    """Median milliseconds of ``iters`` calls of ``fn`` (after one untimed call), and its last result."""
    out = fn()
    times = []
    for _ in range(iters):
        started = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), out


def measure(pixels, quality: int, iters: int, gpu: bool) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from serve_app.encoding import encode_image, jpeg_problems
    from serve_app.model.jpeg import encode_jpeg_on_device

    batch, _, height, width = pixels.shape
    host = [Image.fromarray(p) for p in pixels.permute(0, 2, 3, 1).cpu().numpy()]
    row: dict[str, Any] = {"batch_size": batch}
    row["cpu_serial_ms"], cpu_bytes = timed(lambda: [encode_image(im, "jpeg", quality) for im in host], iters)
    with ThreadPoolExecutor(max_workers=4) as pool:
        row["cpu_pool_ms"], _ = timed(lambda: list(pool.map(lambda im: encode_image(im, "jpeg", quality), host)), iters)
    row["cpu_bytes_per_image"] = sum(map(len, cpu_bytes)) / batch
    if not gpu:
        return row
    row["gpu_ms"], gpu_bytes = timed(lambda: encode_jpeg_on_device(pixels, quality), iters)
    if any(b is None for b in gpu_bytes):
        row["gpu_error"] = "encode_jpeg_on_device returned no bytes (see the log)"
        return row
    row["gpu_bytes_per_image"] = sum(map(len, gpu_bytes)) / batch
    row["gpu_contract_problems"] = sorted({p for b in gpu_bytes for p in jpeg_problems(b, width, height)})

    def decoded(data: bytes):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)

    row["mean_abs_diff_levels"] = float(np.mean([np.abs(decoded(g) - decoded(c)).mean()
                                                 for g, c in zip(gpu_bytes, cpu_bytes, strict=True)]))
    row["gpu_speedup_vs_pool"] = row["cpu_pool_ms"] / row["gpu_ms"] if row["gpu_ms"] > 0 else None
    return row


def render_md(result: dict[str, Any]) -> str:
    lines = [f"# JPEG: GPU (nvjpeg) vs CPU (PIL), {result['size']}, quality {result['quality']}", "",
             f"Device: {result['device']}; GPU encoder: {result['gpu_encoder']}.", "",
             "| pixels | batch | GPU ms (batch) | CPU ms serial | CPU ms, 4 threads | GPU / CPU bytes per image "
             "| mean decoded diff (levels) | contract |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, rows in result["rows"].items():
        for r in rows:
            gpu_ms = f"{r['gpu_ms']:.2f}" if "gpu_ms" in r else "-"
            gpu_b = f"{r['gpu_bytes_per_image']:.0f}" if "gpu_bytes_per_image" in r else "-"
            diff = f"{r['mean_abs_diff_levels']:.3f}" if "mean_abs_diff_levels" in r else "-"
            contract = ("ok" if not r["gpu_contract_problems"] else "; ".join(r["gpu_contract_problems"])) \
                if "gpu_contract_problems" in r else "-"
            lines.append(f"| {kind} | {r['batch_size']} | {gpu_ms} | {r['cpu_serial_ms']:.2f} | {r['cpu_pool_ms']:.2f} "
                         f"| {gpu_b} / {r['cpu_bytes_per_image']:.0f} | {diff} | {contract} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.jpeg_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sd-turbo-random")
    p.add_argument("--device", default="cuda")
    p.add_argument("--cache-dir", help="preset cache (default: the service's)")
    p.add_argument("--size", default="512x512")
    p.add_argument("--batch-sizes", default="1,16,32")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--out", default=f"results/jpeg-{time.strftime('%Y%m%d-%H%M%S')}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    (width, height), = parse_sizes(args.size)
    batches = parse_int_list(args.batch_sizes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from serve_app.model.jpeg import gpu_jpeg_available

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible: nothing measured (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    gpu = gpu_jpeg_available(torch.device(args.device))
    result: dict[str, Any] = {
        "command": "python -m loadtest.jpeg_benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "gpu_encoder": "nvjpeg (torchvision.io.encode_jpeg)" if gpu else "unavailable: CPU path only",
        "size": args.size, "quality": args.quality, "rows": {},
    }

    def save() -> None:
        (out / "jpeg_benchmark.json").write_text(json.dumps(result, indent=1))
        (out / "jpeg_benchmark.md").write_text(render_md(result))

    # 1. The pipeline's own images, at the largest batch, then each batch size a slice of them.
    images = pipeline_pixels(args.model, args.device, args.cache_dir, max(batches), width, height)
    for kind, pixels in (("pipeline", images), ("smooth", smooth_pixels(max(batches), width, height, args.device))):
        for batch in batches:
            row = measure(pixels[:batch].contiguous(), args.quality, args.iters, gpu)
            result["rows"].setdefault(kind, []).append(row)
            print(f"   [{kind}] batch {batch:>2}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                          for k, v in row.items() if k != "batch_size"), flush=True)
            save()
    print(render_md(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
