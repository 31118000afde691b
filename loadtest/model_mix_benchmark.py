"""Two models, one service or two: throughput of each model alone and of a 50/50 mix.

``python -m loadtest.model_mix_benchmark --models tiny,tiny-xl --duration-s 45 --out results/model-mix``

On one local Ray head (Ray's HTTP proxy, so that several applications share one port under
their own route prefixes), with the load tool (``python -m loadtest run``) as the client:

1. one service serving both models (``models=a,b``, one model deployment each): each model
   alone (every request names it), then the 50/50 mix (``--models a,b``) at the same total
   concurrency;
2. two single-model services (``model=a`` and ``model=b``, two applications: two ingresses,
   two model deployments), each loaded at half the concurrency at the same time: the two
   services' images per second added up.

Prints a Markdown table and writes ``model_mix.json`` / ``model_mix.md`` (and every run's load
tool output) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from loadtest.benchmark import machine_info
from loadtest.ports import free_port
from loadtest.workload import parse_models


def load(url: str, out: Path, models: str, concurrency: int, args: argparse.Namespace) -> subprocess.Popen:
    """One load-tool run in the background."""
    command = [
        sys.executable, "-m", "loadtest", "run", "--target", "http", "--url", url,
        "--concurrency", str(concurrency), "--duration-s", str(args.duration_s), "--warmup-s", str(args.warmup_s),
        "--sizes", args.size, "--steps", "1", "--models", models, "--out", str(out), "--label", out.name, "--quiet",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def images_per_s(run: subprocess.Popen, out: Path) -> float:
    output, _ = run.communicate(timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"the load tool failed ({run.returncode}):\n{output[-3000:]}")
    (level,) = json.loads((out / "summary.json").read_text())["levels"]
    if level["errors"]:
        raise RuntimeError(f"{out.name}: {level['errors']} errors: {level['errors_by_status']}")
    return float(level["throughput_img_s"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,tiny-xl", help="two model sources (presets), comma-separated")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop clients in all (split in two for two services)")
    parser.add_argument("--duration-s", type=float, default=45.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--max-batch-size", default="4")
    parser.add_argument("--num-cpus", type=int, default=4, help="CPUs the local Ray head may schedule")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="results/model-mix")
    args = parser.parse_args(argv)
    first, second = parse_models(args.models)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from ray import serve

    from serve_app import launch
    from serve_app.app import build_app

    common = {"max_batch_size": args.max_batch_size, "direct_ingress": "false"}
    if args.cache_dir:
        common["cache_dir"] = args.cache_dir
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    http_options = launch.prepare_ray_environment("127.0.0.1", port, direct_ingress_enabled=False, startup_deadline_s=840)
    launch.start_ray(launch.RayHead(num_cpus=args.num_cpus, log_to_driver=False))
    rows: dict[str, float] = {}
    try:
        launch.start_serve(http_options)
        # 1. One service, both models.
        launch.deploy(build_app({**common, "models": args.models}), "both", route_prefix="/both")
        for label, models in ((f"{first} alone", first), (f"{second} alone", second), ("50/50 mix, one service", args.models)):
            run_dir = out / label.replace(" ", "-").replace("/", "-").replace(",", "")
            rows[label] = images_per_s(load(f"{base}/both", run_dir, models, args.concurrency, args), run_dir)
            print(f"{label}: {rows[label]:.3f} images/s", flush=True)
        serve.delete("both")
        # 2. Two single-model services at once, half the clients each.
        launch.deploy(build_app({**common, "model": first}), "first", route_prefix="/first")
        launch.deploy(build_app({**common, "model": second}), "second", route_prefix="/second")
        half = max(1, args.concurrency // 2)
        runs = {
            name: (load(f"{base}/{route}", out / f"two-services-{name}", name, half, args), out / f"two-services-{name}")
            for name, route in ((first, "first"), (second, "second"))
        }
        apart = {name: images_per_s(run, run_dir) for name, (run, run_dir) in runs.items()}
        rows["50/50, two single-model services (sum)"] = sum(apart.values())
        for name, value in apart.items():
            rows[f"  of which {name}'s service"] = value
        print(f"two services: {apart}", flush=True)
    finally:
        launch.shutdown()

    lines = ["| workload | images/s |", "|---|---:|"] + [f"| {label} | {value:.3f} |" for label, value in rows.items()]
    table = "\n".join(lines) + "\n"
    print(table, end="")
    (out / "model_mix.md").write_text(table)
    (out / "model_mix.json").write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(), "args": vars(args), "images_per_s": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
