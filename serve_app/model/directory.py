"""Checks of a local model directory before anything loads it: one line saying what is wrong.

A directory handed to the service (SageMaker's /opt/ml/model, unpacked from model_data, or any
``SDTURBO_MODEL=/path``) can be wrong in ways that otherwise surface late and badly: a replica
constructor failing three times with a library traceback, minutes into the start. Checked here,
from the files alone (JSON and the safetensors headers, no torch: cheap enough for the entrypoint
and the ingress process), before the service starts:

  1. the directory can be read by this process (SageMaker's local mode extracts model_data into
     a directory only its owner can read, and the container's user is not that owner),
  2. ``model_index.json`` names a pipeline the service runs (``StableDiffusionPipeline`` or
     ``StableDiffusionXLPipeline``; another architecture, Flux say, would fail inside diffusers
     with a message about some component),
  3. every component the service loads is there: its folder, its configuration, its weights,
  4. every safetensors file is whole: its header parses and its tensors end where the file
     ends (a truncated copy or an interrupted unpack would otherwise fail in the replica),
  5. the UNet attends to what the text encoders produce (a mix of two architectures).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

from serve_app.model.resolved import PIPELINE_CLASSES

# Component -> (configuration files, one of which must exist; whether it has weights).
_TOKENIZER = (("tokenizer_config.json", "vocab.json", "tokenizer.json"), False)
_SD_COMPONENTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "unet": (("config.json",), True),
    "vae": (("config.json",), True),
    "text_encoder": (("config.json",), True),
    "tokenizer": _TOKENIZER,
    "scheduler": (("scheduler_config.json",), False),
}
# Per pipeline class the service runs (serve_app.model.resolved.PIPELINE_CLASSES): the components
# it loads, and the text encoders whose widths add up to what the UNet attends to.
REQUIRED_COMPONENTS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "sd": _SD_COMPONENTS,
    "sdxl": {**_SD_COMPONENTS, "text_encoder_2": (("config.json",), True), "tokenizer_2": _TOKENIZER},
}
TEXT_ENCODERS = {"sd": ("text_encoder",), "sdxl": ("text_encoder", "text_encoder_2")}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# A safetensors header is JSON of a few hundred bytes per tensor; far above any real one.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class ModelDirectoryError(ValueError):
    """The directory cannot be served; the message (one line) says why and what to do."""


def unreadable_reason(path: Path) -> str | None:
    """Why this process cannot read ``path`` (None when it can, or when it does not exist)."""
    try:
        (path / "model_index.json").stat()
        return None
    except FileNotFoundError:
        # Known paths resolve, or the directory is missing: readable as far as it goes. The
        # listing is tried too: an empty or absent directory is not a permission problem.
        try:
            os.listdir(path) if path.exists() else None
            return None
        except PermissionError:
            pass
    except PermissionError:
        pass
    try:
        info = path.stat()
        mode = f"mode {stat.filemode(info.st_mode)} owned by uid {info.st_uid} gid {info.st_gid}"
    except OSError as exc:
        mode = f"{type(exc).__name__}: {exc.strerror}"
    return (
        f"{path} is not readable by this process (uid {os.getuid()}, gid {os.getgid()}; {mode}). "
        "SageMaker's local mode extracts model_data into a directory only its owner can read: make the "
        "directory and its files readable by others (chmod -R a+rX on the host side of the mount, or keep "
        "model.tar.gz in a directory others can read), or mount it with the container user's uid"
    )


def check_pipeline_directory(path: Path) -> None:
    """Raise ModelDirectoryError with one line when ``path`` cannot be served as SD-Turbo."""
    path = Path(path)
    # 1. Readable at all, and everything in it.
    reason = unreadable_reason(path)
    if reason:
        raise ModelDirectoryError(reason)
    try:
        _check_contents(path)
    except PermissionError as exc:
        raise ModelDirectoryError(
            f"{exc.filename} is not readable by this process (uid {os.getuid()}, gid {os.getgid()}): "
            "make the model directory and its files readable by others (chmod -R a+rX)"
        ) from None


def _check_contents(path: Path) -> None:
    # 2. A diffusers pipeline of the architecture this service runs.
    index = _read_json(path, "model_index.json")
    found_class = index.get("_class_name")
    family = next((f for f, name in PIPELINE_CLASSES.items() if name == found_class), None)
    if family is None:
        raise ModelDirectoryError(
            f"{path} holds a {found_class or 'pipeline of unknown class'} (model_index.json _class_name); "
            f"this service serves {' and '.join(PIPELINE_CLASSES.values())} (SD-Turbo, SDXL-Turbo)"
        )
    # 3. The components the service loads, each with its configuration and weights.
    for component, (configs, has_weights) in REQUIRED_COMPONENTS[family].items():
        listed = index.get(component)
        if not isinstance(listed, list) or not listed or listed[0] is None:
            raise ModelDirectoryError(f"{path}/model_index.json lists no {component}: the pipeline is incomplete")
        folder = path / component
        if not folder.is_dir():
            raise ModelDirectoryError(f"{path} has no {component}/ folder, which model_index.json lists: the pipeline is incomplete")
        if not any((folder / name).is_file() for name in configs):
            raise ModelDirectoryError(f"{path}/{component}/ has no {' or '.join(configs)}: the component is incomplete")
        if has_weights:
            weights = [p for p in folder.iterdir() if p.name.endswith(WEIGHT_SUFFIXES) and p.is_file()]
            if not weights:
                raise ModelDirectoryError(f"{path}/{component}/ has no weights (*.safetensors or *.bin): the component is incomplete")
            # 4. Whole weight files.
            for weights_file in weights:
                if weights_file.name.endswith(".safetensors"):
                    check_safetensors(weights_file)
    # 5. One architecture throughout.
    unet_dim = _read_json(path / "unet", "config.json").get("cross_attention_dim")
    widths = [_read_json(path / encoder, "config.json").get("hidden_size") for encoder in TEXT_ENCODERS[family]]
    text_dim = sum(widths) if all(isinstance(w, int) for w in widths) else None
    if isinstance(unet_dim, int) and text_dim is not None and unet_dim != text_dim:
        raise ModelDirectoryError(
            f"{path}: the UNet attends to {unet_dim}-wide text embeddings but the text encoder makes "
            f"{text_dim}-wide ones: its components come from different architectures"
        )


def check_safetensors(path: Path) -> None:
    """Raise ModelDirectoryError unless ``path``'s header parses and its tensors fill the file exactly."""
    size = path.stat().st_size
    with open(path, "rb") as weights:
        head = weights.read(8)
        if len(head) < 8:
            raise ModelDirectoryError(f"{path} is not a safetensors file ({size} bytes: no header)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise ModelDirectoryError(
                f"{path} is not a whole safetensors file (its header would be {header_len} bytes; the file has {size})"
            )
        try:
            header = json.loads(weights.read(header_len))
        except ValueError:
            raise ModelDirectoryError(f"{path} is not a safetensors file (its header is not JSON)") from None
    try:
        data_end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, AttributeError):
        raise ModelDirectoryError(f"{path} is not a safetensors file (its header lists no tensor offsets)") from None
    expected = 8 + header_len + data_end
    if size < expected:
        raise ModelDirectoryError(
            f"{path} is truncated: {size} of {expected} bytes (an interrupted copy or unpack of model_data)"
        )
    if size > expected:
        raise ModelDirectoryError(f"{path} is not a whole safetensors file: {size - expected} bytes after its last tensor")


def _read_json(folder: Path, name: str) -> dict:
    try:
        value = json.loads((folder / name).read_text())
    except FileNotFoundError:
        raise ModelDirectoryError(f"{folder} has no {name}: it is not a diffusers pipeline directory") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(f"{folder / name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ModelDirectoryError(f"{folder / name} is not a JSON object")
    return value
