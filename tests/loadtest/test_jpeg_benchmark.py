"""loadtest.jpeg_benchmark on the CPU: the CPU path is measured and the GPU encoder recorded as unavailable."""

import json

from loadtest import jpeg_benchmark


def test_the_cpu_run_measures_the_cpu_path_and_says_the_gpu_encoder_is_unavailable(cache_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "jpeg"
    assert jpeg_benchmark.main(["--model", "tiny", "--device", "cpu", "--cache-dir", cache_dir, "--size", "64x64",
                                "--batch-sizes", "1,2", "--iters", "1", "--out", str(out)]) == 0
    result = json.loads((out / "jpeg_benchmark.json").read_text())
    assert result["gpu_encoder"].startswith("unavailable")
    for kind in ("pipeline", "smooth"):
        rows = result["rows"][kind]
        assert [r["batch_size"] for r in rows] == [1, 2]
        assert all(r["cpu_serial_ms"] > 0 and r["cpu_bytes_per_image"] > 0 and "gpu_ms" not in r for r in rows)
    assert "| smooth | 2 | - |" in (out / "jpeg_benchmark.md").read_text()
