"""Writers for load-test results: raw CSV, summary JSON, Markdown table, PNG plot."""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.stats import LevelSummary

RAW_FIELDS = [
    "target",
    "concurrency",
    "start",
    "latency_ms",
    "status",
    "ok",
    "batch_size",
    "images",
    "width",
    "height",
    "model",
    "bytes",
    "server_queue_ms",
    "server_inference_ms",
    "server_encode_ms",
    "server_total_ms",
    "request_id",
    "error",
]


def write_raw_csv(path: os.PathLike | str, records: Sequence[Mapping[str, Any]]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RAW_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RAW_FIELDS})
    return p


def read_raw_csv(path: os.PathLike | str) -> list[dict[str, Any]]:
    """Read raw.csv back with numeric fields converted (for re-summarising)."""
    out: list[dict[str, Any]] = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            rec: dict[str, Any] = dict(row)
            for k in ("start", "latency_ms", "server_queue_ms", "server_inference_ms", "server_encode_ms", "server_total_ms"):
                rec[k] = float(row[k]) if row.get(k) not in (None, "") else None
            for k in ("concurrency", "status", "batch_size", "images", "width", "height", "bytes"):
                rec[k] = int(row[k]) if row.get(k) not in (None, "") else None
            rec["ok"] = row.get("ok") in ("True", "true", "1")
            out.append(rec)
    return out


def _clean(obj: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: os.PathLike | str, payload: Any) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_clean(payload), indent=2, sort_keys=False) + "\n")
    return p


def _f(v: float | None, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{nd}f}"


def _hist(h: Mapping[str, int]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in h.items()) if h else "-"


def _errs(e: Mapping[str, int]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in e.items()) if e else "-"


def usd_per_1000_images(usd_per_hour: float, images_per_s: float) -> float:
    """What 1,000 images cost at a sustained throughput: the hourly price over images per hour.

    ``usd_per_hour`` is the price of everything that served the measured throughput (instances x
    price per instance-hour). NaN when nothing was served.
    """
    if not images_per_s or math.isnan(images_per_s) or images_per_s <= 0:
        return math.nan
    return usd_per_hour / (images_per_s * 3600.0) * 1000.0


def markdown_table(series: Mapping[str, Sequence[LevelSummary]], instance_price: float | None = None) -> str:
    """One Markdown table; a row per (series, concurrency). With ``instance_price`` (USD per
    hour) a last column gives USD per 1,000 images at that level's throughput."""
    cost_head, cost_rule = (" USD / 1k images |", "---:|") if instance_price is not None else ("", "")
    head = (
        f"| target | concurrency | requests | images/s | p50 ms | p95 ms | p99 ms | error rate | errors by status | batch_size (size:count) |{cost_head}\n"
        f"|---|---:|---:|---:|---:|---:|---:|---:|---|---|{cost_rule}\n"
    )
    rows = []
    for name, levels in series.items():
        for s in levels:
            cost = f" {_f(usd_per_1000_images(instance_price, s.throughput_img_s), 4)} |" if instance_price is not None else ""
            rows.append(
                f"| {name} | {s.concurrency} | {s.requests} | {_f(s.throughput_img_s, 2)} | {_f(s.latency_ms_p50)} | "
                f"{_f(s.latency_ms_p95)} | {_f(s.latency_ms_p99)} | {s.error_rate * 100:.1f}% | {_errs(s.errors_by_status)} | "
                f"{_hist(s.batch_size_hist)} |{cost}"
            )
    return head + "\n".join(rows) + "\n"


def per_model_figures(summary: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """A mixed-model load run's figures per model, from the load tool's summary.json
    (``per_model``): {model: {concurrency: {requests, img_s, p50_ms, p95_ms}}}; {} for one model."""
    return {
        name: {
            str(lv["concurrency"]): {
                "requests": lv["requests"],
                "img_s": lv["throughput_img_s"],
                "p50_ms": lv["latency_ms_p50"],
                "p95_ms": lv["latency_ms_p95"],
            }
            for lv in levels
        }
        for name, levels in summary.get("per_model", {}).items()
    }


def per_model_markdown(figures: Mapping[str, Mapping[str, Mapping[str, Any]]], mix: str | None = None) -> str:
    """``per_model_figures`` as a Markdown section (empty for a one-model run)."""
    if not figures:
        return ""
    lines = [f"## Per model (mixed-model workload, shares {mix or 'equal'})", "",
             "| model | clients | requests | images/s | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, levels in figures.items():
        for concurrency, f in levels.items():
            lines.append(f"| {name} | {concurrency} | {f['requests']} | {_f(f['img_s'], 2)} | {_f(f['p50_ms'])} | {_f(f['p95_ms'])} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: os.PathLike | str, series: Mapping[str, Sequence[LevelSummary]], title: str, meta: Mapping[str, Any] | None = None, extra: str = "", instance_price: float | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if meta:
        for k, v in meta.items():
            lines.append(f"- **{k}**: {v}")
        lines.append("")
    lines.append(markdown_table(series, instance_price))
    if extra:
        lines += ["", extra.rstrip(), ""]
    p.write_text("\n".join(lines))
    return p


def write_plot(path: os.PathLike | str, series: Mapping[str, Sequence[LevelSummary]], title: str = "") -> Path:
    """Throughput (images/s) and p95 latency against concurrency, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, levels in series.items():
        levels = sorted(levels, key=lambda s: s.concurrency)
        xs = [s.concurrency for s in levels]
        ax1.plot(xs, [s.throughput_img_s for s in levels], marker="o", label=name)
        ax2.plot(xs, [s.latency_ms_p95 for s in levels], marker="o", label=name)
    ticks = sorted({s.concurrency for levels in series.values() for s in levels})
    for ax, ylabel in ((ax1, "throughput (images/s)"), (ax2, "p95 latency (ms)")):
        ax.set_xlabel("concurrency (clients)")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
