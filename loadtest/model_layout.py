"""Two models on one device: one process holding both, or one process each?

``python -m loadtest.model_layout --models tiny,tiny-xl --batches 6 --batch-size 4 --size 128x128``

The two ways to serve several models from one container (docs/architecture.md):

* ``shared``: one model replica holds every model and runs their pipeline calls one after the
  other on its one device loop (what Ray Serve's model multiplexing amounts to when every model
  stays loaded);
* ``separate``: one replica per model, each its own process with its own device loop, their calls
  running at the same time on the same device.

It times the same workload both ways with the service's own loader and generator: ``--batches``
pipeline calls of ``--batch-size`` images per model (a 50/50 mix for two models), after one
warm-up call each, plus each model alone, with ``--threads`` torch threads per process (a model
replica's: Ray sets OMP_NUM_THREADS to its CPUs, 1 by default on CPU). Throughput is images over the wall time from the
first call to the last one's end. Prints a Markdown table and writes ``model_layout.json`` to
``--out``. Needs torch, diffusers and ``serve_app.model``; not Ray.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

from loadtest.benchmark import machine_info
from loadtest.workload import parse_models, parse_sizes


def _generator(preset: str, cache_dir: str, threads: int):
    import torch

    from serve_app.model import SDTurboGenerator, load_pipeline, resolve_model

    # As in a model replica: Ray gives each its CPUs' worth of threads (OMP_NUM_THREADS = num_cpus).
    torch.set_num_threads(threads)
    pipe = load_pipeline(resolved=resolve_model(preset, None, cache_dir), device="cpu", dtype="float32")
    return SDTurboGenerator(pipe)


def _specs(batch_size: int, width: int, height: int, offset: int) -> list:
    from serve_app.batching import GenerationSpec

    return [GenerationSpec(prompt="a lighthouse", seed=offset + i, width=width, height=height) for i in range(batch_size)]


def _run(generators: dict, order: list[str], batch_size: int, width: int, height: int) -> tuple[float, float]:
    """Run one call per entry of ``order`` (model names); returns (start, end) wall times."""
    started = time.time()
    for index, name in enumerate(order):
        generators[name].generate(_specs(batch_size, width, height, index * batch_size))
    return started, time.time()


def _separate_worker(preset, cache_dir, threads, calls, batch_size, width, height, barrier, results) -> None:
    generators = {preset: _generator(preset, cache_dir, threads)}
    _run(generators, [preset], batch_size, width, height)  # warm-up
    barrier.wait()
    results.put((preset, *_run(generators, [preset] * calls, batch_size, width, height)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,tiny-xl", help="offline presets, comma-separated")
    parser.add_argument("--batches", type=int, default=6, help="pipeline calls per model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", default="128x128", help="WxH")
    parser.add_argument("--cache-dir", default=None, help="preset cache (default: the service's cache_dir)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (a model replica's CPUs)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    models = parse_models(args.models)
    (width, height), = parse_sizes(args.size)
    if args.cache_dir is None:
        from serve_app.settings import Settings

        args.cache_dir = Settings.load().cache_dir
    n = args.batches
    rows: dict[str, dict] = {}

    # 1. One process, every model loaded, their calls interleaved one after the other.
    generators = {name: _generator(name, args.cache_dir, args.threads) for name in models}
    for name in models:
        _run(generators, [name], args.batch_size, width, height)  # warm-up
    for name in models:
        start, end = _run(generators, [name] * n, args.batch_size, width, height)
        rows[f"{name} alone"] = {"images": n * args.batch_size, "seconds": end - start}
    start, end = _run(generators, [name for _ in range(n) for name in models], args.batch_size, width, height)
    rows["shared: one process, calls interleaved"] = {"images": n * len(models) * args.batch_size, "seconds": end - start}
    del generators

    # 2. One process per model, calls at the same time.
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(models)), context.Queue()
    workers = [
        context.Process(
            target=_separate_worker,
            args=(name, args.cache_dir, args.threads, n, args.batch_size, width, height, barrier, results),
        )
        for name in models
    ]
    for worker in workers:
        worker.start()
    spans = [results.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    seconds = max(end for _, _, end in spans) - min(start for _, start, _ in spans)
    rows["separate: one process per model, concurrent"] = {"images": n * len(models) * args.batch_size, "seconds": seconds}

    for row in rows.values():
        row["images_per_s"] = round(row["images"] / row["seconds"], 3)
        row["seconds"] = round(row["seconds"], 2)
    lines = ["| layout | images | seconds | images/s |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['images']} | {r['seconds']} | {r['images_per_s']} |" for name, r in rows.items()]
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_layout.json").write_text(
            json.dumps({"machine": machine_info(), "args": vars(args), "rows": rows}, indent=2)
        )
        (out / "model_layout.md").write_text(table)


if __name__ == "__main__":
    main()
