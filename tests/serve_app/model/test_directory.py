"""Model-directory checks: each fault a model_data archive can carry is named in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from serve_app.model import ModelLoadError, resolve_model
from serve_app.model.directory import (
    ModelDirectoryError,
    check_pipeline_directory,
    check_safetensors,
    unreadable_reason,
)

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534


@pytest.fixture
def pipeline_dir(tiny_model_dir, tmp_path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    return target


def _unet_weights(path: Path) -> Path:
    return next((path / "unet").glob("*.safetensors"))


def test_an_sdxl_preset_passes_and_a_missing_second_text_encoder_is_named(cache_dir, tmp_path):
    from serve_app.model import ensure_preset

    xl = tmp_path / "xl"
    shutil.copytree(ensure_preset("tiny-xl", cache_dir), xl)
    check_pipeline_directory(xl)
    shutil.rmtree(xl / "text_encoder_2")
    with pytest.raises(ModelDirectoryError, match="has no text_encoder_2/ folder"):
        check_pipeline_directory(xl)


def test_a_saved_pipeline_passes(pipeline_dir):
    check_pipeline_directory(pipeline_dir)
    assert unreadable_reason(pipeline_dir) is None
    assert unreadable_reason(pipeline_dir / "absent") is None  # missing is not a permission problem


def test_a_truncated_safetensors_file_is_named_with_its_sizes(pipeline_dir):
    weights = _unet_weights(pipeline_dir)
    whole = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(whole // 2)
    with pytest.raises(ModelDirectoryError, match=rf"unet/.*\.safetensors is truncated: {whole // 2} of {whole} bytes") as info:
        check_pipeline_directory(pipeline_dir)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a safetensors file", "its header would be"),
        (b"\x04\x00\x00\x00\x00\x00\x00\x00{not", "its header is not JSON"),
        (b"abc", "no header"),
    ],
)
def test_a_file_that_is_not_safetensors_is_refused(tmp_path, content, reason):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelDirectoryError, match=reason):
        check_safetensors(path)


def test_trailing_bytes_after_the_last_tensor_are_refused(pipeline_dir):
    with open(_unet_weights(pipeline_dir), "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(ModelDirectoryError, match="10 bytes after its last tensor"):
        check_pipeline_directory(pipeline_dir)


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "tokenizer", "scheduler"])
def test_a_missing_component_folder_is_named(pipeline_dir, component):
    shutil.rmtree(pipeline_dir / component)
    with pytest.raises(ModelDirectoryError, match=rf"has no {component}/ folder, which model_index.json lists"):
        check_pipeline_directory(pipeline_dir)


def _drop_text_encoder_listing(path: Path) -> None:
    index = json.loads((path / "model_index.json").read_text())
    index["text_encoder"] = [None, None]
    (path / "model_index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda path: (path / "vae" / "config.json").unlink(), r"vae/ has no config.json"),
        (lambda path: _unet_weights(path).unlink(), r"unet/ has no weights"),
        (_drop_text_encoder_listing, "lists no text_encoder"),
        (lambda path: (path / "model_index.json").unlink(), "has no model_index.json"),
    ],
)
def test_a_component_without_weights_or_config_or_listing_is_named(pipeline_dir, break_it, reason):
    break_it(pipeline_dir)
    with pytest.raises(ModelDirectoryError, match=reason):
        check_pipeline_directory(pipeline_dir)


def test_another_architecture_is_refused_by_name(pipeline_dir):
    index = json.loads((pipeline_dir / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (pipeline_dir / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelDirectoryError, match="holds a FluxPipeline .* serves StableDiffusionPipeline and StableDiffusionXLPipeline"):
        check_pipeline_directory(pipeline_dir)


def test_components_of_two_architectures_are_refused(pipeline_dir):
    config_path = pipeline_dir / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["cross_attention_dim"] = 2048  # SDXL's UNet beside a smaller text encoder
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match="UNet attends to 2048-wide text embeddings"):
        check_pipeline_directory(pipeline_dir)


def test_resolve_model_turns_a_fault_into_one_model_load_error(pipeline_dir, cache_dir):
    shutil.rmtree(pipeline_dir / "scheduler")
    with pytest.raises(ModelLoadError, match=r"cannot be served: .* has no scheduler/ folder") as info:
        resolve_model(str(pipeline_dir), None, cache_dir)
    assert "\n" not in str(info.value)


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    # The system interpreter: the checks need only the standard library, and a virtual
    # environment's interpreter may live where this user cannot reach.
    return subprocess.run(
        [shutil.which("python3", path="/usr/bin:/bin") or sys.executable, "-c", code], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
        timeout=60, env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")}, cwd="/",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to another user to meet a directory it cannot read")
def test_a_directory_only_its_owner_can_read_is_refused_with_the_fix(tiny_model_dir):
    # As SageMaker's local mode mounts model_data: owned by root, mode 0700; the reader is another
    # user, who can reach the directory itself (pytest's own temporary folders are root's only).
    parent = Path(tempfile.mkdtemp(prefix="model-dir-test-", dir="/tmp"))
    parent.chmod(0o755)
    pipeline_dir = parent / "model"
    try:
        shutil.copytree(tiny_model_dir, pipeline_dir)
        _check_as_nobody(pipeline_dir)
    finally:
        shutil.rmtree(parent)


def _check_as_nobody(pipeline_dir: Path) -> None:
    pipeline_dir.chmod(0o700)
    code = (
        "from pathlib import Path; from serve_app.model.directory import check_pipeline_directory, ModelDirectoryError\n"
        f"try: check_pipeline_directory(Path({str(pipeline_dir)!r}))\n"
        "except ModelDirectoryError as e: print('refused:', e)\n"
    )
    result = _as_nobody(code)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.startswith(f"refused: {pipeline_dir} is not readable by this process (uid {NOBODY}")
    assert "mode drwx------ owned by uid 0" in result.stdout and "chmod -R a+rX" in result.stdout
    assert result.stdout.count("\n") == 1
    # A folder inside that cannot be read is named too.
    pipeline_dir.chmod(0o755)
    for path in pipeline_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (pipeline_dir / "unet").chmod(0o700)
    result = _as_nobody(code)
    assert f"refused: {pipeline_dir}/unet" in result.stdout and "is not readable by this process" in result.stdout, result
