"""Compile artifacts shipped with the model: built as a replica compiles, keyed, and loaded by a new
process into an empty inductor cache, where the replica's compilation then finds its graphs (tiny
preset, TAESD at one bucket and one size: the cheapest real inductor compile on a CPU)."""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from serve_app.build_compile_cache import build
from serve_app.model import ARTIFACTS_FOLDER, artifacts_folder, load_compile_artifacts
from serve_app.model.compile_cache import SIDECAR_FORMAT, CompileKey
from serve_app.settings import Settings

REPO = Path(__file__).resolve().parents[3]
# What loading in the new process must show: the decoder's graph found in the inductor cache that
# the artifacts filled, nothing compiled from scratch (the same tolerance as the decoders' tests).
MEAN_PIXEL_TOLERANCE = 2 / 255


def settings_for(cache_dir: str, inductor_dir: Path, artifacts: str) -> dict[str, str]:
    """A replica compiling TAESD only, for batch 1 at 64x64 ('default' mode: what runs on a CPU)."""
    return {
        "model": "tiny", "device": "cpu", "cache_dir": cache_dir, "decoders": "tiny", "tiny_decoder": "taesd-random",
        "compile": "off", "compile_decoder": "default", "compile_buckets": "1", "compile_sizes": "64x64",
        "max_batch_size": "1", "compile_cache_dir": str(inductor_dir), "compile_artifacts": artifacts,
    }


@contextlib.contextmanager
def captured(caplog):
    # The service's loggers may not propagate (serve_app.logs.configure_logging): listen on this one,
    # and on it alone (each record once).
    module_logger = logging.getLogger("serve_app.model.compile_cache")
    module_logger.addHandler(caplog.handler)
    propagate, module_logger.propagate = module_logger.propagate, False
    try:
        with caplog.at_level(logging.INFO, logger=module_logger.name):
            yield caplog
    finally:
        module_logger.removeHandler(caplog.handler)
        module_logger.propagate = propagate


@pytest.fixture(scope="module")
def built(cache_dir, tiny_model_dir, tmp_path_factory):
    """The artifacts as `python -m serve_app.build_compile_cache --out DIR ...` builds them (its
    ``build``, in this process): the replica's load and compile, then the save."""
    root = tmp_path_factory.mktemp("compile-artifacts")
    inductor_dir, out = root / "build-inductor-cache", root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
        summary = build(Settings.load(settings_for(cache_dir, inductor_dir, "off"), environ={}), str(out))
    return {"summary": summary, "out": out, "inductor_dir": inductor_dir, "root": root}


@pytest.mark.timeout(900)
def test_the_build_compiles_like_a_replica_and_writes_keyed_artifacts_with_a_sidecar(built):
    summary, out = built["summary"], built["out"]
    # 1. The replica's compilation went into the configured inductor cache (what a kept
    #    compile_cache_dir reuses): its FX graph cache entries and generated code.
    assert list(built["inductor_dir"].rglob("fxgraph/**/*")) and list(built["inductor_dir"].rglob("*.py"))
    # 2. One artifacts file and its sidecar, named by the key.
    files = sorted(path.name for path in out.iterdir())
    assert files == [f"{summary['key']}.bin", f"{summary['key']}.json"]
    sidecar = json.loads((out / f"{summary['key']}.json").read_text())
    key = sidecar["key"]
    assert key == {field: summary[field] for field in key}
    assert {k: key[k] for k in ("device", "dtype", "unet_mode", "decoder_mode", "decoders", "buckets", "sizes")} == {
        "device": "cpu", "dtype": "float32", "unet_mode": "off", "decoder_mode": "default", "decoders": "tiny",
        "buckets": "1", "sizes": "64x64",
    }
    assert key["torch"] == torch.__version__ and key["hardware"].endswith(torch.backends.cpu.get_cpu_capability())
    assert CompileKey(**key).name == summary["key"] and summary["key"].startswith("cpu-")
    # 3. The sidecar vouches for the bytes, and says what they hold: inductor's and AOTAutograd's entries.
    data = (out / f"{summary['key']}.bin").read_bytes()
    assert sidecar["bytes"] == len(data) and sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["artifacts"]["inductor"] >= 1 and sidecar["artifacts"]["aot_autograd"] >= 1
    assert sidecar["model"] == "preset:tiny" and sidecar["build_s"] > 0


# A new process, an empty inductor cache, the artifacts: what a SageMaker instance's replica runs.
_LOAD_IN_A_NEW_PROCESS = """
import json, logging, os, sys
import torch
from torch._dynamo.utils import counters
from serve_app.app import resolve_sources
from serve_app.model import load_for_serving
from serve_app.settings import Settings

logging.basicConfig(level=logging.INFO)
settings = Settings.load(json.loads(sys.argv[1]), environ={})
served = load_for_serving(resolve_sources(settings, "cpu"), **settings.serving_options)
compiled = served.decoders.decoders["tiny"]
latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
with torch.inference_mode():
    diff = (compiled(latents) - compiled.eager(latents)).abs()
print("RESULT " + json.dumps({
    "artifacts": served.artifacts.as_dict(),
    "key": served.compile_key.name,
    "counters": {name: dict(counters[name]) for name in ("inductor", "aot_autograd")},
    "mean_diff": diff.mean().item(), "max_diff": diff.max().item(),
    "inductor_dir": os.environ["TORCHINDUCTOR_CACHE_DIR"],
}))
"""


@pytest.mark.timeout(900)
def test_a_new_process_with_an_empty_inductor_cache_compiles_from_the_loaded_artifacts(built, cache_dir,
                                                                                       tiny_model_dir):
    # The artifacts where 'auto' looks for them: the model directory's compile-cache/, in a copy of
    # the preset's directory elsewhere (as model.tar.gz unpacks into /opt/ml/model): the key is the
    # same wherever the model lies.
    model_dir = built["root"] / "opt-ml-model"
    shutil.copytree(tiny_model_dir, model_dir)
    shutil.copytree(built["out"], model_dir / ARTIFACTS_FOLDER)
    inductor_dir = built["root"] / "replica-inductor-cache"
    settings = {**settings_for(cache_dir, inductor_dir, "auto"), "model": str(model_dir)}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_A_NEW_PROCESS, json.dumps(settings)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=880,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    loaded = json.loads(lines[-1][len("RESULT "):])
    assert loaded["inductor_dir"] == str(inductor_dir.resolve())
    assert loaded["key"] == built["summary"]["key"]
    assert loaded["artifacts"]["status"] == "loaded" and loaded["artifacts"]["count"] >= 2
    # Served from the artifacts: the FX graph and AOTAutograd caches hit, nothing compiled from
    # scratch. Without them, this empty directory would have missed both.
    inductor, aot = loaded["counters"]["inductor"], loaded["counters"]["aot_autograd"]
    assert inductor.get("fxgraph_cache_hit", 0) >= 1 and inductor.get("fxgraph_cache_miss", 0) == 0, inductor
    assert aot.get("autograd_cache_hit", 0) >= 1 and aot.get("autograd_cache_miss", 0) == 0, aot
    assert loaded["mean_diff"] <= MEAN_PIXEL_TOLERANCE, loaded
    assert "compile artifacts: loaded" in result.stderr


def key_with(**changes: str) -> CompileKey:
    fields = {"torch": "2.13.0", "python": "3.11", "device": "cuda", "hardware": "NVIDIA H200 sm_90",
              "dtype": "float16", "unet_mode": "reduce-overhead", "decoder_mode": "reduce-overhead",
              "decoders": "full", "buckets": "1,2,4,8", "sizes": "512x512", "architecture": "0123456789abcdef"}
    return CompileKey(**{**fields, **changes})


def write_artifacts(folder: Path, key: CompileKey, data: bytes) -> Path:
    """``data`` as the artifacts of ``key`` in ``folder``, with the sidecar a build writes."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key.name}.bin"
    path.write_bytes(data)
    sidecar = {"format": SIDECAR_FORMAT, "key": key.as_dict(), "file": path.name, "bytes": len(data),
               "sha256": hashlib.sha256(data).hexdigest(), "artifacts": {"inductor": 1}}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def test_artifacts_built_for_another_key_are_never_loaded_and_the_log_says_why(tmp_path, monkeypatch, caplog):
    here = key_with()
    write_artifacts(tmp_path, key_with(hardware="NVIDIA H100 80GB HBM3 sm_90", torch="2.12.0"), b"artifacts")
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: pytest.fail("another key's file was loaded"))
    with captured(caplog):
        result = load_compile_artifacts(tmp_path, here)
    assert result.status == "none" and result.count == 0
    [(name, differences)] = result.others.items()
    assert differences == ["torch: '2.12.0' (here: '2.13.0')", "hardware: 'NVIDIA H100 80GB HBM3 sm_90' (here: 'NVIDIA H200 sm_90')"]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"none for key {here.name}" in record.getMessage() and f"{name} differs in torch" in record.getMessage()
    # Nothing at all: one INFO line; compile_artifacts=off: not even a look.
    caplog.clear()
    with captured(caplog):
        assert load_compile_artifacts(tmp_path / "empty", here).status == "none"
        assert load_compile_artifacts(None, here).status == "off"
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "none found" in caplog.records[0].getMessage()


def test_a_damaged_artifacts_file_is_skipped_with_a_warning_never_an_error(tmp_path, monkeypatch, caplog):
    # Decided: skipped, not a failed start. The artifacts only save time; a replica without them
    # compiles from scratch and serves the same images, and the warning names the file and the fault.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    here = key_with()
    garbage = b"\x00not torch's format" * 100
    path = write_artifacts(tmp_path / "models", here, garbage)
    # 1. Garbage that its sidecar vouches for: torch cannot read it.
    with captured(caplog):
        result = load_compile_artifacts(path.parent, here)
    assert result.status == "skipped" and "torch could not read them" in result.reason
    assert caplog.records[-1].levelno == logging.WARNING and str(path) in caplog.records[-1].getMessage()
    # 2. Truncated (an interrupted copy): the sidecar's size and sha256 catch it before torch reads it.
    path.write_bytes(garbage[: len(garbage) // 2])
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: pytest.fail("a damaged file was loaded"))
    result = load_compile_artifacts(path.parent, here)
    assert result.status == "skipped" and "damaged or truncated" in result.reason
    # 3. No sidecar: nothing vouches for the bytes.
    path.with_suffix(".json").unlink()
    assert "sidecar" in load_compile_artifacts(path.parent, here).reason
    assert not (tmp_path / "inductor" / "fxgraph").exists()


def test_the_setting_names_the_folder_auto_is_the_model_directorys():
    assert artifacts_folder("auto", "/opt/ml/model") == Path("/opt/ml/model") / ARTIFACTS_FOLDER
    assert artifacts_folder("off", "/opt/ml/model") is None
    assert artifacts_folder("/srv/artifacts", "/opt/ml/model") == Path("/srv/artifacts")
    assert Settings.load({}, environ={}).compile_artifacts == "auto"
    # Every field is in the file's name through the hash; the readable part says where it runs.
    assert key_with().name != key_with(buckets="1,2,4,8,16").name
    assert key_with().name.startswith("cuda-nvidia-h200-sm-90-torch2.13.0-")
