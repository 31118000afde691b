"""Drive the tool end to end (as a subprocess) against loopback stand-ins.

* HTTP target: a small stdlib server speaking the /predict response format, with a
  503 on every third request, so error rates and batch sizes are checked exactly.
* SageMaker target: moto's ThreadedMotoServer with canned invoke_endpoint results.
"""
from __future__ import annotations

import csv
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtest.ports import free_port

pytestmark = pytest.mark.timeout(120)


class _StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    counter = 0
    lock = threading.Lock()
    bodies: list[dict] = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).counter += 1
            n = type(self).counter
            type(self).bodies.append(body)
        if n % 3 == 0:
            out = json.dumps({"error": {"type": "overloaded", "message": "busy", "field": None}, "request_id": str(n)}).encode()
            status = 503
        else:
            out = json.dumps({"image": "aGk=", "format": "jpeg", "batch_size": 1 + n % 2, "cached": False,
                              "timings_ms": {"queue": 1.0, "inference": 2.0, "encode": 0.5, "total": 4.0},
                              "model": {"name": body.get("model", "default")},
                              "request_id": str(n)}).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def standin():
    _StandIn.counter = 0
    _StandIn.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", free_port()), _StandIn)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_target_counts_errors_batches_and_writes_reports(tool, standin, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\nfirst prompt\nsecond prompt\n")
    out = tmp_path / "out"
    r = tool(["run", "--target", "http", "--url", standin, "--concurrency", "1,3", "--requests", "12",
              "--prompts", str(prompts), "--sizes", "64x64,128x96", "--out", str(out), "--label", "standin"])
    assert r.returncode == 0, r.stderr
    assert "[c=  3]" in r.stderr  # progress display
    summary = json.loads((out / "summary.json").read_text())
    levels = {lv["concurrency"]: lv for lv in summary["levels"]}
    assert set(levels) == {1, 3}
    # every request answered: 12 per level, every third one 503 (server-wide counter)
    assert sum(lv["requests"] for lv in levels.values()) == 24
    assert sum(lv["errors_by_status"].get("503", 0) for lv in levels.values()) == 8
    assert sum(sum(lv["batch_size_hist"].values()) for lv in levels.values()) == 16
    assert set().union(*(lv["batch_size_hist"] for lv in levels.values())) <= {"1", "2"}
    for lv in levels.values():
        assert lv["throughput_img_s"] > 0 and lv["latency_ms_p50"] <= lv["latency_ms_p95"] <= lv["latency_ms_p99"]
        assert lv["server_ms_p50"]["inference"] == pytest.approx(2.0)
    raw = (out / "raw.csv").read_text().splitlines()
    assert len(raw) == 25 and raw[0].startswith("target,concurrency,start,latency_ms,status")
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "| standin | 3 | 12 |" in (out / "report.md").read_text()
    # the workload: prompts from the file, sizes from the list, random seeds
    assert {b["prompt"] for b in _StandIn.bodies} <= {"first prompt", "second prompt"}
    assert {(b["width"], b["height"]) for b in _StandIn.bodies} <= {(64, 64), (128, 96)}
    assert len({b["seed"] for b in _StandIn.bodies}) > 20
    # the report subcommand rebuilds the same figures from raw.csv
    r2 = tool(["report", str(out / "raw.csv"), "--out", str(tmp_path / "again")])
    assert r2.returncode == 0, r2.stderr
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert [lv["requests"] for lv in again["levels"]] == [12, 12]


def test_mixed_model_workload_names_the_models_and_reports_each(tool, standin, tmp_path):
    out = tmp_path / "out"
    r = tool(["run", "--target", "http", "--url", standin, "--concurrency", "2", "--requests", "30",
              "--models", "tiny,tiny-xl", "--out", str(out), "--label", "mix", "--quiet"])
    assert r.returncode == 0, r.stderr
    asked = [b["model"] for b in _StandIn.bodies]
    assert set(asked) == {"tiny", "tiny-xl"} and len(asked) == 30
    with open(out / "raw.csv") as fh:
        rows = list(csv.DictReader(fh))
    # the model column: the name the server reported for each image
    assert {row["model"] for row in rows if row["ok"] == "True"} == {"tiny", "tiny-xl"}
    per_model = (out / "per_model.md").read_text()
    for name in ("tiny", "tiny-xl"):
        ok = sum(1 for row in rows if row["ok"] == "True" and row["model"] == name)
        assert f"| mix [{name}] | 2 | {sum(1 for a in asked if a == name)} |" in per_model and ok > 0
    assert "| mix [tiny] |" in r.stdout
    # The same figures in summary.json, per model and level, beside the totals.
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_model"]) == {"tiny", "tiny-xl"} and summary["meta"]["models"] == "tiny,tiny-xl"
    assert sum(lv[0]["requests"] for lv in summary["per_model"].values()) == summary["levels"][0]["requests"]


def test_a_mix_sets_each_models_share_of_the_requests(tool, standin, tmp_path):
    out = tmp_path / "out"
    r = tool(["run", "--target", "http", "--url", standin, "--concurrency", "2", "--requests", "60",
              "--models", "tiny,tiny-xl", "--mix", "1:0", "--out", str(out), "--quiet"])
    assert r.returncode == 0, r.stderr
    assert {b["model"] for b in _StandIn.bodies} == {"tiny"} and len(_StandIn.bodies) == 60
    assert json.loads((out / "summary.json").read_text())["meta"]["mix"] == "1:0"
    refused = tool(["run", "--target", "http", "--url", standin, "--requests", "1", "--models", "tiny,tiny-xl",
                    "--mix", "1:2:3", "--out", str(tmp_path / "bad")])
    assert refused.returncode == 2 and "3 shares for 2 models" in refused.stderr


def test_http_target_duration_bound(tool, standin, tmp_path):
    r = tool(["run", "--target", "http", "--url", standin, "--concurrency", "2", "--duration-s", "1.5",
              "--out", str(tmp_path), "--quiet", "--instance-price", "2.5"])
    assert r.returncode == 0, r.stderr
    lv = json.loads((tmp_path / "summary.json").read_text())["levels"][0]
    assert lv["requests"] > 5
    assert lv["usd_per_1000_images"] == pytest.approx(2.5 / (lv["throughput_img_s"] * 3600) * 1000)
    assert 1.4 <= lv["window_s"] <= 3.0


def test_http_target_unreachable_reports_transport_errors(tool, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = tool(["run", "--target", "http", "--url", url, "--requests", "3", "--out", str(tmp_path), "--quiet",
              "--timeout-s", "5"])
    assert r.returncode == 3  # no request succeeded
    lv = json.loads((tmp_path / "summary.json").read_text())["levels"][0]
    assert lv["errors_by_status"] == {"transport": 3} and lv["error_rate"] == 1.0


def test_bad_arguments_exit_2(tool, tmp_path):
    assert tool(["run", "--target", "http", "--requests", "1"]).returncode == 2  # no --url
    r = tool(["run", "--target", "sagemaker", "--endpoint-name", "x"], AWS_REGION="", AWS_DEFAULT_REGION="")
    assert r.returncode == 2 and "--region" in r.stderr
    r = tool(["run", "--target", "http", "--url", "http://127.0.0.1:1", "--sizes", "65x64", "--out", str(tmp_path)])
    assert r.returncode == 2 and "multiples of 8" in r.stderr


def test_sweep_levels():
    from loadtest.__main__ import parse_concurrency

    assert parse_concurrency(None, "1:32") == [1, 2, 4, 8, 16, 32]
    assert parse_concurrency(None, "3:20") == [3, 6, 12, 20]
    assert parse_concurrency("1,4,16", None) == [1, 4, 16]
    with pytest.raises(ValueError):
        parse_concurrency(None, "4:2")


def test_sagemaker_target_against_moto(tool, tmp_path):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        canned = [
            {"Body": json.dumps({"image": "aGk=", "format": "jpeg", "batch_size": 4, "request_id": f"m{i}",
                                 "timings_ms": {"queue": 1, "inference": 9, "encode": 1, "total": 11}}),
             "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic"}
            for i in range(20)
        ]
        req = urllib.request.Request(url + "/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps({"region": "eu-west-1", "results": canned}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        r = tool(["run", "--target", "sagemaker", "--endpoint-name", "sd-turbo", "--region", "eu-west-1",
                  "--endpoint-url", url, "--concurrency", "1,2", "--requests", "5", "--out", str(tmp_path), "--quiet"],
                 AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing")
        assert r.returncode == 0, r.stderr
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["meta"]["target"] == "sagemaker"
        for lv in summary["levels"]:
            assert lv["requests"] == 5 and lv["ok"] == 5 and lv["batch_size_hist"] == {"4": 5}
            assert lv["server_ms_p50"]["inference"] == 9
        # moto routed the calls by the SigV4 credential scope (service "sagemaker"): the
        # requests were signed; the canned bodies were consumed in order
        rows = list(csv.DictReader((tmp_path / "raw.csv").open()))
        assert len({row["request_id"] for row in rows}) == 10
    finally:
        server.stop()


def test_report_with_an_instance_price_adds_usd_per_1000_images(tool, tmp_path):
    from loadtest import report

    # Two levels of 11 successful requests each, one every 0.1 s: 11 images in a 1 s window.
    records = [{"target": "http", "concurrency": c, "start": 100.0 + i * 0.1, "latency_ms": 0.0, "status": 200,
                "ok": True, "batch_size": 1, "images": 1} for c in (1, 4) for i in range(11)]
    raw = report.write_raw_csv(tmp_path / "raw.csv", records)
    r = tool(["report", str(raw), "--instance-price", "4.0"])
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["meta"]["instance_price_usd_per_hour"] == 4.0
    for level in summary["levels"]:
        assert level["throughput_img_s"] == pytest.approx(11.0)
        assert level["usd_per_1000_images"] == pytest.approx(4.0 / (11.0 * 3600) * 1000)
    assert "USD / 1k images" in (tmp_path / "report.md").read_text() and "0.1010" in r.stdout
    assert tool(["report", str(raw), "--instance-price", "-1"]).returncode == 2
