"""Report writers: raw CSV round trip, JSON, Markdown table, PNG plot."""
import json
import math

import pytest

from loadtest import report
from loadtest.stats import summarise

pytestmark = pytest.mark.timeout(60)


def _records():
    recs = []
    for c, n in ((1, 4), (4, 8)):
        for i in range(n):
            recs.append({"target": "http", "concurrency": c, "start": 100.0 + i * 0.1, "latency_ms": 50.0 + i,
                         "status": 200 if i % 4 else 503, "ok": bool(i % 4), "batch_size": c if i % 4 else None,
                         "images": 1, "width": 64, "height": 64, "bytes": 10, "server_inference_ms": 20.0,
                         "request_id": f"r{i}", "error": None if i % 4 else "overloaded: try later"})
    return recs


def test_raw_csv_round_trip(tmp_path):
    recs = _records()
    path = report.write_raw_csv(tmp_path / "raw.csv", recs)
    back = report.read_raw_csv(path)
    assert len(back) == len(recs)
    assert back[1]["latency_ms"] == pytest.approx(51.0) and back[1]["ok"] is True and back[1]["batch_size"] == 1
    assert back[0]["ok"] is False and back[0]["status"] == 503 and back[0]["batch_size"] is None
    assert back[0]["server_queue_ms"] is None


def test_json_markdown_and_plot(tmp_path):
    recs = _records()
    levels = [summarise([r for r in recs if r["concurrency"] == c], c) for c in (1, 4)]
    series = {"app": levels, "baseline": levels[:1]}
    j = report.write_json(tmp_path / "s.json", {"levels": [s.as_dict() for s in levels], "nan": math.nan})
    doc = json.loads(j.read_text())  # strict JSON: NaN written as null
    assert doc["nan"] is None and doc["levels"][1]["concurrency"] == 4
    assert doc["levels"][1]["errors_by_status"] == {"503": 2}

    md = report.markdown_table(series)
    lines = [ln for ln in md.splitlines() if ln.startswith("| app") or ln.startswith("| baseline")]
    assert len(lines) == 3
    assert "| app | 4 | 8 |" in md and "503:2" in md and "4:6" in md
    mdp = report.write_markdown(tmp_path / "r.md", series, title="T", meta={"machine": "test"})
    assert mdp.read_text().startswith("# T") and "**machine**: test" in mdp.read_text()

    png = report.write_plot(tmp_path / "plot.png", series, title="t")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_usd_per_1000_images_is_the_hourly_price_over_images_per_hour():
    # 10 images/s = 36,000 images/hour; at $4.00/hour that is $0.1111 per 1,000 images.
    assert report.usd_per_1000_images(4.0, 10.0) == pytest.approx(4.0 / 36.0)
    assert report.usd_per_1000_images(1.0, 1000 / 3600) == pytest.approx(1.0)  # 1,000 images in one hour
    assert math.isnan(report.usd_per_1000_images(4.0, 0.0)) and math.isnan(report.usd_per_1000_images(4.0, math.nan))


def test_markdown_table_adds_the_cost_column_only_with_a_price():
    recs = _records()
    levels = [summarise([r for r in recs if r["concurrency"] == c], c) for c in (1, 4)]
    assert "USD / 1k images" not in report.markdown_table({"app": levels})
    md = report.markdown_table({"app": levels}, instance_price=3.6)
    assert "USD / 1k images |" in md.splitlines()[0] and md.splitlines()[1].endswith("---:|")
    for line, level in zip(md.splitlines()[2:], levels):
        expected = 3.6 / (level.throughput_img_s * 3600) * 1000
        assert line.endswith(f" {expected:.4f} |")


def test_per_model_figures_and_their_table_come_from_the_load_tools_summary():
    recs = _records()
    levels = [summarise([r for r in recs if r["concurrency"] == c], c) for c in (1, 4)]
    summary = {"levels": [], "per_model": {"tiny": [lv.as_dict() for lv in levels], "tiny-xl": [levels[1].as_dict()]}}
    figures = report.per_model_figures(summary)
    assert set(figures) == {"tiny", "tiny-xl"} and set(figures["tiny"]) == {"1", "4"}
    four = figures["tiny"]["4"]
    assert (four["requests"], four["img_s"], four["p50_ms"], four["p95_ms"]) == (
        levels[1].requests, levels[1].throughput_img_s, levels[1].latency_ms_p50, levels[1].latency_ms_p95
    )
    table = report.per_model_markdown(figures, "3:1")
    assert "shares 3:1" in table and f"| tiny-xl | 4 | {levels[1].requests} |" in table
    # A one-model run has no per-model section.
    assert report.per_model_figures({"levels": []}) == {} and report.per_model_markdown({}) == ""
