"""Percentile, throughput-window and summary maths of the load tool."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.stats import percentile, summarise, throughput

pytestmark = pytest.mark.timeout(60)


def test_percentile_known_values():
    data = [15, 20, 35, 40, 50]
    assert percentile(data, 0) == 15
    assert percentile(data, 100) == 50
    assert percentile(data, 50) == 35
    # linear interpolation between closest ranks: rank = 0.4 * 4 = 1.6 -> 20 + 0.6 * 15
    assert percentile(data, 40) == pytest.approx(29.0)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))


def test_percentile_order_independent_and_rejects_bad_q():
    assert percentile([3, 1, 2], 50) == 2
    with pytest.raises(ValueError):
        percentile([1, 2], 101)
    with pytest.raises(ValueError):
        percentile([1, 2], -1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_matches_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


def test_throughput_counts_only_inside_the_window():
    ends = [0.5, 1.0, 2.0, 3.0, 3.5, 10.0]
    # window [1, 3] holds 1.0, 2.0, 3.0 -> 3 items over 2 s
    assert throughput(ends, 1.0, 3.0) == pytest.approx(1.5)
    assert throughput(ends, 1.0, 3.0, weights=[1, 4, 4, 4, 1, 1]) == pytest.approx(6.0)
    assert math.isnan(throughput(ends, 3.0, 3.0))
    with pytest.raises(ValueError):
        throughput([1.0], 0.0, 2.0, weights=[1, 2])


def _rec(start, latency_ms, status=200, batch_size=None, **kw):
    ok = 200 <= status < 300
    return {"start": start, "latency_ms": latency_ms, "status": status, "ok": ok, "batch_size": batch_size, **kw}


def test_summarise_window_errors_and_batch_histogram():
    recs = [
        _rec(0.0, 100, batch_size=1),  # ends 0.1: in warm-up, not in window
        _rec(0.5, 1000, batch_size=4, server_inference_ms=50.0),  # ends 1.5
        _rec(1.0, 1000, batch_size=4, server_inference_ms=70.0),  # ends 2.0
        _rec(1.5, 1000, batch_size=2, server_inference_ms=60.0),  # ends 2.5
        _rec(2.0, 500, status=503),  # ends 2.5, error
        _rec(2.0, 100, status=0),  # transport error
        _rec(3.0, 2000, batch_size=4),  # ends 5.0: after the window end
    ]
    s = summarise(recs, 8, run_start=0.0, run_end=4.0, warmup_s=1.0)
    assert s.concurrency == 8
    assert s.requests == 7 and s.ok == 5 and s.errors == 2
    assert s.error_rate == pytest.approx(2 / 7)
    assert s.errors_by_status == {"503": 1, "transport": 1}
    assert s.window_s == pytest.approx(3.0)
    assert s.measured_requests == 5  # ends 1.5, 2.0, 2.5, 2.5, 2.1
    assert s.throughput_img_s == pytest.approx(3 / 3.0)  # three ok requests finished in [1, 4]
    assert s.latency_ms_p50 == pytest.approx(1000)  # latencies of ok requests in the window only
    assert s.batch_size_hist == {"1": 1, "2": 1, "4": 3}
    assert s.batch_size_mean == pytest.approx((1 + 2 + 12) / 5)
    assert s.server_ms_p50["inference"] == pytest.approx(60.0)


def test_summarise_count_bounded_defaults_and_empty():
    recs = [_rec(10.0, 500), _rec(10.0, 1000), _rec(10.5, 1500)]
    s = summarise(recs, 2)
    # window: first send (10.0) to last response (12.0)
    assert s.window_s == pytest.approx(2.0)
    assert s.throughput_img_s == pytest.approx(1.5)
    assert s.latency_ms_p99 == pytest.approx(1490.0)
    e = summarise([], 4)
    assert e.requests == 0 and math.isnan(e.throughput_img_s) and math.isnan(e.latency_ms_p50)


def test_summarise_warmup_longer_than_run_measures_whole_run():
    recs = [_rec(0.0, 1000), _rec(1.0, 1000)]
    s = summarise(recs, 1, run_start=0.0, run_end=2.0, warmup_s=30)
    assert s.window_s == pytest.approx(2.0)
    assert s.throughput_img_s == pytest.approx(1.0)


def test_mean_call_size_counts_calls_not_requests():
    from loadtest.stats import mean_call_size

    # 8 requests from one call of 8, 2 requests from two calls of 1: 10 requests in 3 calls.
    assert mean_call_size({"8": 8, "1": 2}) == pytest.approx(10 / 3)
    assert math.isnan(mean_call_size({}))
