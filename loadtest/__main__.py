"""CLI: ``python -m loadtest run ...`` and ``python -m loadtest report ...``.

Exit status: 0 when the run completed and at least one request succeeded, 3 when no
request succeeded at all (the reports are still written), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.workload import load_prompts, parse_int_list, parse_model_mix, parse_models, parse_sizes


def parse_concurrency(levels: str | None, sweep: str | None) -> list[int]:
    """'1,4,16' as given, or a sweep 'MIN:MAX' doubling from MIN up to MAX (MAX included)."""
    if sweep:
        lo_s, _, hi_s = sweep.partition(":")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if lo <= 0 or hi < lo:
            raise ValueError(f"--sweep wants MIN:MAX with 0 < MIN <= MAX, got {sweep!r}")
        out, c = [], lo
        while c < hi:
            out.append(c)
            c *= 2
        out.append(hi)
        return out
    return parse_int_list(levels or "1")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description="Load-test sd-turbo-serve (Locust as a library).")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="drive a target at fixed concurrency levels (or a sweep) and write reports")
    r.add_argument("--target", choices=["http", "sagemaker"], required=True)
    g = r.add_argument_group("http target")
    g.add_argument("--url", help="base URL of the service, e.g. http://127.0.0.1:8000")
    g.add_argument("--path", default="/predict", help="request path (default /predict; /invocations also works)")
    r.add_argument("--accept", default="application/json",
                   help="Accept header: application/json (default; batch_size read from the JSON) or image/jpeg|png|webp (raw image, X-Batch-Size header)")
    s = r.add_argument_group("sagemaker target")
    s.add_argument("--endpoint-name")
    s.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    s.add_argument("--endpoint-url", help="override the sagemaker-runtime URL (moto, VPC endpoint)")
    lv = r.add_argument_group("load shape")
    lv.add_argument("--concurrency", default="1", help="comma-separated levels of concurrent closed-loop clients (default 1)")
    lv.add_argument("--sweep", help="MIN:MAX: levels doubling from MIN to MAX instead of --concurrency")
    lv.add_argument("--duration-s", type=float, help="seconds per level (default 30 unless --requests is given)")
    lv.add_argument("--requests", type=int, help="requests per level (stops at whichever of duration/requests comes first)")
    lv.add_argument("--warmup-s", type=float, default=0.0, help="leading seconds of each level left out of throughput/percentiles")
    lv.add_argument("--timeout-s", type=float, default=120.0, help="per-request client timeout")
    lv.add_argument("--cooldown-s", type=float, default=0.5, help="pause between levels")
    w = r.add_argument_group("workload")
    w.add_argument("--prompts", help="prompt file: JSON list or one prompt per line (default: 16 built-in prompts)")
    w.add_argument("--sizes", help="WxH[,WxH...] picked at random per request (default: server default size)")
    w.add_argument("--steps", type=int, default=1, help="num_inference_steps (default 1)")
    w.add_argument("--models", help="NAME[,NAME...]: each request names one of these served models, chosen with "
                   "equal odds unless --mix (a mixed-model workload; per-model figures are printed and written too). "
                   "Default: no model field")
    w.add_argument("--mix", help="each --models model's share of the requests, in order, e.g. 3:1 (default: equal shares)")
    w.add_argument("--output-format", choices=["jpeg", "png", "webp"], help="output_format field (default: server default)")
    w.add_argument("--fixed-seed", type=int, help="same seed on every request (default: random seed per request)")
    w.add_argument("--seed", type=int, default=0, help="seed of the client-side random choices")
    o = r.add_argument_group("output")
    o.add_argument("--out", help="output directory (default results/<target>-<timestamp>)")
    o.add_argument("--label", help="series name in the reports (default: the target)")
    o.add_argument("--quiet", action="store_true", help="no progress display")
    o.add_argument("--progress-interval-s", type=float, default=2.0)
    o.add_argument("--instance-price", type=float, metavar="USD_PER_HOUR",
                   help="hourly price of what serves the target (instances x price); adds USD per 1,000 images per level")

    rep = sub.add_parser("report", help="rebuild summary.json, report.md and plot.png from a raw.csv")
    rep.add_argument("raw_csv")
    rep.add_argument("--out", help="output directory (default: the raw.csv's directory)")
    rep.add_argument("--warmup-s", type=float, default=0.0)
    rep.add_argument("--instance-price", type=float, metavar="USD_PER_HOUR",
                     help="hourly price of what served the run; adds USD per 1,000 images per level")
    return p


def _meta(args: argparse.Namespace, levels: list[int]) -> dict[str, Any]:
    return {
        "tool": "python -m loadtest run",
        "argv": sys.argv[1:],
        "target": args.target,
        "url": args.url,
        "path": args.path if args.target == "http" else None,
        "endpoint_name": args.endpoint_name,
        "region": args.region,
        "concurrency": levels,
        "duration_s": args.duration_s,
        "requests": args.requests,
        "warmup_s": args.warmup_s,
        "sizes": args.sizes,
        "steps": args.steps,
        "models": args.models,
        "mix": args.mix,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "client_host": platform.node(),
        "client_cpus": os.cpu_count(),
    }


def write_reports(out: Path, label: str, records: list[dict[str, Any]], summaries: list, meta: dict[str, Any],
                  instance_price: float | None = None, per_model: dict[str, list] | None = None) -> dict[str, Path]:
    """``per_model``: a mixed-model workload's summaries per model name, written beside the levels."""
    from loadtest import report

    series = {label: summaries}
    levels = [s.as_dict() for s in summaries]
    if instance_price is not None:
        meta = {**meta, "instance_price_usd_per_hour": instance_price}
        for level in levels:
            level["usd_per_1000_images"] = report.usd_per_1000_images(instance_price, level["throughput_img_s"])
    summary: dict[str, Any] = {"meta": meta, "label": label, "levels": levels}
    if per_model:
        summary["per_model"] = {name: [s.as_dict() for s in model_levels] for name, model_levels in per_model.items()}
    paths = {
        "raw_csv": report.write_raw_csv(out / "raw.csv", records),
        "summary_json": report.write_json(out / "summary.json", summary),
        "report_md": report.write_markdown(out / "report.md", series, title=f"Load test: {label}",
                                           meta={k: v for k, v in meta.items() if v not in (None, [], "")},
                                           instance_price=instance_price),
        "plot_png": report.write_plot(out / "plot.png", series, title=f"{label}: throughput and p95 against concurrency"),
    }
    return paths


def cmd_run(args: argparse.Namespace) -> int:
    p = build_parser()
    if args.target == "http" and not args.url:
        p.error("--target http needs --url")
    if args.target == "sagemaker" and not (args.endpoint_name and args.region):
        p.error("--target sagemaker needs --endpoint-name and --region")
    try:
        levels = parse_concurrency(args.concurrency, args.sweep)
        workload_kwargs = dict(prompts=load_prompts(args.prompts), sizes=parse_sizes(args.sizes), steps=args.steps,
                               output_format=args.output_format, fixed_seed=args.fixed_seed,
                               models=parse_models(args.models))
        workload_kwargs["model_weights"] = parse_model_mix(workload_kwargs["models"], args.mix)
    except (ValueError, OSError) as exc:
        p.error(str(exc))
    duration = args.duration_s if (args.duration_s or args.requests) else 30.0
    if args.requests is not None and args.requests <= 0:
        p.error("--requests must be positive")
    check_instance_price(p, args.instance_price)

    # locust (and its gevent monkeypatching) only from here on
    from loadtest.locust_run import RunConfig, run_level, stderr_progress
    from loadtest.stats import summarise
    from loadtest.workload import Workload

    cfg = RunConfig(target=args.target, workload=Workload(**workload_kwargs), url=args.url, path=args.path,
                    accept=args.accept, endpoint_name=args.endpoint_name, region=args.region,
                    endpoint_url=args.endpoint_url, timeout_s=args.timeout_s, seed=args.seed)
    label = args.label or args.target
    out = Path(args.out or f"results/{args.target}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    progress = None if args.quiet else stderr_progress()
    all_records: list[dict[str, Any]] = []
    summaries = []
    # A mixed-model workload: each model's share of every level, over the level's whole window.
    per_model: dict[str, list] = {name: [] for name in cfg.workload.models} if len(cfg.workload.models) > 1 else {}
    for i, c in enumerate(levels):
        if i and args.cooldown_s > 0:
            time.sleep(args.cooldown_s)
        recs, w0, w1 = run_level(cfg, c, duration_s=duration, max_requests=args.requests, progress=progress,
                                 progress_interval_s=args.progress_interval_s)
        all_records += recs
        summaries.append(summarise(recs, c, run_start=w0, run_end=w1, warmup_s=args.warmup_s))
        for name in per_model:
            mine = [r for r in recs if r.get("model") == name]
            per_model[name].append(summarise(mine, c, run_start=w0, run_end=w1, warmup_s=args.warmup_s))
    meta = _meta(args, levels)
    meta["duration_s"] = duration
    paths = write_reports(out, label, all_records, summaries, meta, args.instance_price, per_model)
    from loadtest.report import markdown_table

    print(markdown_table({label: summaries}, args.instance_price), end="")
    if per_model:
        table = markdown_table({f"{label} [{name}]": levels for name, levels in per_model.items()}, args.instance_price)
        (out / "per_model.md").write_text(table)
        print(table, end="")
    print("wrote " + " ".join(str(v) for v in paths.values()))
    return 0 if any(s.ok for s in summaries) else 3


def check_instance_price(parser: argparse.ArgumentParser, price: float | None) -> None:
    if price is not None and not (price > 0 and price != float("inf")):
        parser.error(f"--instance-price wants a positive USD-per-hour figure, got {price}")


def cmd_report(args: argparse.Namespace) -> int:
    from loadtest.report import read_raw_csv

    check_instance_price(build_parser(), args.instance_price)
    from loadtest.stats import summarise

    raw = Path(args.raw_csv)
    out = Path(args.out) if args.out else raw.parent
    recs = read_raw_csv(raw)
    by_level: dict[int, list] = defaultdict(list)
    for r in recs:
        by_level[int(r["concurrency"])].append(r)
    summaries = [summarise(v, c, warmup_s=args.warmup_s) for c, v in sorted(by_level.items())]
    label = recs[0]["target"] if recs else "results"
    meta: dict[str, Any] = {"tool": "python -m loadtest report", "source": str(raw), "note": "window = first send to last response per level"}
    old = raw.parent / "summary.json"
    if old.exists():
        try:
            meta["original_meta"] = json.loads(old.read_text()).get("meta")
            label = json.loads(old.read_text()).get("label", label)
        except ValueError:
            pass
    write_reports(out, label, recs, summaries, meta, args.instance_price)
    from loadtest.report import markdown_table

    print(markdown_table({label: summaries}, args.instance_price), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
