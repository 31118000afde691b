"""Pure maths for the load-test tool: percentiles, throughput windows, per-level summaries.

No locust, no ray, no torch here: this module is imported by the tool, the benchmark
driver, the GPU benchmark and the tests alike.

Conventions (documented in docs/benchmarks.md):

* A *record* is one request: ``start`` (unix seconds, when the request was sent),
  ``latency_ms`` (client-side, send to full response read), ``status`` (HTTP status
  code, or 0 for a transport error such as a refused connection or a client timeout),
  ``ok`` (2xx and a parseable body), ``batch_size`` (what the server reported, or None).
* Percentiles use linear interpolation between closest ranks (numpy's default
  ``method="linear"``), over successful requests only.
* Throughput is counted over a *measured window*: requests that *finished* inside
  ``[window_start, window_end]`` divided by the window length.  With a warm-up the window
  starts ``warmup_s`` after the first request was sent; a duration-bounded run ends the
  window at the stop time, a count-bounded run at the last response.  Requests still in
  flight at the end are not counted (they were not served within the window).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation; NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q!r}")
    data = sorted(float(v) for v in values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return data[lo]
    frac = rank - lo
    return data[lo] + (data[hi] - data[lo]) * frac


def throughput(end_times: Iterable[float], window_start: float, window_end: float, weights: Iterable[int] | None = None) -> float:
    """Items per second finished within ``[window_start, window_end]``.

    ``weights`` (same length as ``end_times``) counts images per request when a request
    carries more than one image; default one each.
    """
    length = window_end - window_start
    if length <= 0:
        return math.nan
    ends = list(end_times)
    ws = [1] * len(ends) if weights is None else list(weights)
    if len(ws) != len(ends):
        raise ValueError("weights and end_times differ in length")
    n = sum(w for t, w in zip(ends, ws) if window_start <= t <= window_end)
    return n / length


@dataclass
class LevelSummary:
    """Figures for one concurrency level of one target."""

    concurrency: int
    requests: int  # all requests that finished (ok or not), whole run
    ok: int
    errors: int
    error_rate: float  # errors / requests (whole run)
    errors_by_status: dict[str, int]
    window_s: float
    measured_requests: int  # requests that finished inside the measured window
    throughput_img_s: float  # successful images per second inside the window
    throughput_req_s: float  # all finished requests per second inside the window
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float
    batch_size_hist: dict[str, int]  # server-reported batch_size -> count (ok requests)
    batch_size_mean: float
    server_ms_p50: dict[str, float] = field(default_factory=dict)  # p50 of server timings_ms.*

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt_status(status: Any) -> str:
    try:
        code = int(status)
    except (TypeError, ValueError):
        return str(status)
    return "transport" if code == 0 else str(code)


def summarise(
    records: Sequence[Mapping[str, Any]],
    concurrency: int,
    *,
    run_start: float | None = None,
    run_end: float | None = None,
    warmup_s: float = 0.0,
) -> LevelSummary:
    """Summarise the records of one concurrency level.

    ``run_start`` defaults to the first request's send time; ``run_end`` to the last
    response's end time (count-bounded runs).  The measured window is
    ``[run_start + warmup_s, run_end]``; latency percentiles use the ok requests that
    finished in that window (all ok requests when the window holds none).
    """
    recs = list(records)
    if recs:
        starts = [float(r["start"]) for r in recs]
        ends = [float(r["start"]) + float(r["latency_ms"]) / 1000.0 for r in recs]
    else:
        starts, ends = [], []
    if run_start is None:
        run_start = min(starts) if starts else 0.0
    if run_end is None:
        run_end = max(ends) if ends else run_start
    w0 = run_start + max(0.0, warmup_s)
    w1 = run_end
    if w1 <= w0:  # warm-up longer than the run: measure the whole run instead
        w0 = run_start
    window = max(0.0, w1 - w0)

    in_window = [(r, e) for r, e in zip(recs, ends) if w0 <= e <= w1]
    ok_in = [r for r, _ in in_window if r.get("ok")]
    lat_pool = ok_in or [r for r in recs if r.get("ok")]
    lats = [float(r["latency_ms"]) for r in lat_pool]

    ok_all = [r for r in recs if r.get("ok")]
    errs = [r for r in recs if not r.get("ok")]
    by_status = Counter(_fmt_status(r.get("status")) for r in errs)
    hist = Counter(str(int(r["batch_size"])) for r in ok_all if r.get("batch_size") not in (None, "", 0))
    hist_n = sum(hist.values())
    bmean = sum(int(k) * v for k, v in hist.items()) / hist_n if hist_n else math.nan

    server_p50: dict[str, float] = {}
    for key in ("queue", "inference", "encode", "total"):
        vals = [float(r[f"server_{key}_ms"]) for r in lat_pool if r.get(f"server_{key}_ms") not in (None, "")]
        if vals:
            server_p50[key] = percentile(vals, 50)

    img_counts = [int(r.get("images", 1) or 1) for r, _ in in_window if r.get("ok")]
    return LevelSummary(
        concurrency=int(concurrency),
        requests=len(recs),
        ok=len(ok_all),
        errors=len(errs),
        error_rate=(len(errs) / len(recs)) if recs else 0.0,
        errors_by_status=dict(sorted(by_status.items())),
        window_s=window,
        measured_requests=len(in_window),
        throughput_img_s=(sum(img_counts) / window) if window > 0 else math.nan,
        throughput_req_s=(len(in_window) / window) if window > 0 else math.nan,
        latency_ms_mean=(sum(lats) / len(lats)) if lats else math.nan,
        latency_ms_p50=percentile(lats, 50),
        latency_ms_p95=percentile(lats, 95),
        latency_ms_p99=percentile(lats, 99),
        latency_ms_max=max(lats) if lats else math.nan,
        batch_size_hist=dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
        batch_size_mean=bmean,
        server_ms_p50=server_p50,
    )


def mean_call_size(batch_size_hist: Mapping[str, int]) -> float:
    """Mean images per pipeline call, from a per-request histogram (size -> requests).

    ``batch_size_mean`` weighs each request; a call of k images holds k of them, so the
    calls of size k number count_k / k. Calls cut by the measured window make this approximate.
    """
    calls = sum(count / int(size) for size, count in batch_size_hist.items() if int(size) > 0)
    return sum(batch_size_hist.values()) / calls if calls else math.nan
