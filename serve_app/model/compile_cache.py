"""Compile artifacts shipped with the model: a compiled replica's start without compiling from scratch.

A replica with ``compile`` (or ``compile_decoder``) on compiles the UNet and the decoders for every
batch bucket x size before it reports ready (``serve_app/model/buckets.py``): minutes on a cold
machine. Inductor keeps what it compiled in its cache directory (``compile_cache_dir``), but a
SageMaker instance starts on a new disk every time, and ``/opt/ml/model`` (unpacked from
model.tar.gz) is read-only. So the compiled results travel **with the model**: torch's portable
"mega-cache" (``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``) serialises, in one
byte string, the cache entries that compiling produced or hit: inductor's FX graph cache (the
generated code, and on CUDA the compiled Triton kernels bundled with it), AOTAutograd's cache, the
autotuning results (``max-autotune``) and Dynamo's profile-guided shape records. Loading them writes
those entries into this process's (empty, writable) inductor cache directory, so the warm-up's
compilation finds them there, as on a restarted machine with a kept cache. What is not in them:
Dynamo's tracing of the Python code (it runs again at every start, seconds) and, on the CPU, the
C++ kernels' shared libraries (inductor's C++ code is in the entries, but g++ builds it again).

The artifacts are only valid for what made them, so each file is named by a key
(``CompileKey``): torch (and CUDA) version, Python, the device and its hardware (the GPU's name and
compute capability; on the CPU the instruction set inductor generates code for), the dtype, the
compile modes, the batch buckets, the sizes, the decoders and the compiled components' architecture.
A replica loads only the file of its own key; a file built for another key is never loaded, and
is logged as skipped with the fields that differ. torch checks its own cache keys again on every
lookup, so a stale entry can cost a compile, never a wrong result.

Layout, beside the model's weights: ``<model dir>/compile-cache/<key name>.bin`` (the artifacts)
and ``<key name>.json`` (the key, size, sha256, what the file holds, when and how long it took to
build). ``python -m serve_app.build_compile_cache`` writes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

# The folder of the model directory the artifacts live in (the ``compile_artifacts`` setting's 'auto').
ARTIFACTS_FOLDER = "compile-cache"
# The sidecar's layout; a sidecar of another format is skipped like another key.
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class CompileKey:
    """What a set of compile artifacts is valid for; every field is text, as in the sidecar."""

    torch: str  # torch's version, and on CUDA the CUDA version it was built with
    python: str  # major.minor: Dynamo's bytecode and the pickled entries depend on it
    device: str  # 'cpu' or 'cuda'
    hardware: str  # CUDA: the GPU's name and compute capability; CPU: machine and vector ISA
    dtype: str
    unet_mode: str  # the UNet's compile mode ('off' when not compiled)
    decoder_mode: str
    decoders: str  # the loaded decoders, e.g. 'full,tiny'
    buckets: str  # e.g. '1,2,4,8'
    sizes: str  # e.g. '512x512'
    architecture: str  # a hash of the compiled components' configs (not of their weights)

    @property
    def name(self) -> str:
        """The file stem: readable (device, hardware, torch) and a hash of every field."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]
        readable = f"{self.device}-{self.hardware}-torch{self.torch}".lower()
        return f"{re.sub(r'[^a-z0-9.]+', '-', readable).strip('-')}-{digest}"

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def differences(self, other: dict[str, Any]) -> list[str]:
        """What ``other`` (a sidecar's key) says that this key does not: 'field: theirs (here: ours)'."""
        ours = self.as_dict()
        return [
            f"{field}: {other.get(field)!r} (here: {value!r})"
            for field, value in ours.items()
            if other.get(field) != value
        ] + [f"{field}: unknown field" for field in sorted(set(other) - set(ours))]


def _public_config(config: Any) -> dict[str, Any]:
    # Underscored entries (_name_or_path, _diffusers_version) say where and by what a config was
    # saved, not what is compiled: a model moved from the build machine's folder to /opt/ml/model
    # keeps its key.
    return {name: value for name, value in dict(config).items() if not name.startswith("_")}


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"
    # Inductor's C++ code is generated for this vector instruction set (AVX2, AVX512, ...).
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def compile_key(
    pipe: Any,
    *,
    unet_mode: str,
    decoder_mode: str,
    decoders: Sequence[str],
    buckets: Sequence[int],
    sizes: Sequence[tuple[int, int]],
    tiny_dir: str | None = None,
) -> CompileKey:
    """The key of what a replica with these settings compiles for ``pipe`` (loaded, not yet
    compiled; ``pipe.vae`` still the model's own VAE) and the TAESD in ``tiny_dir``, if loaded."""
    device = pipe.device
    configs = {"unet": _public_config(pipe.unet.config), "vae": _public_config(pipe.vae.config)}
    if tiny_dir:
        configs["tiny"] = _public_config(json.loads((Path(tiny_dir) / "config.json").read_text()))
    architecture = hashlib.sha256(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()[:16]
    torch_version = torch.__version__ + (f" cuda {torch.version.cuda}" if device.type == "cuda" else "")
    return CompileKey(
        torch=torch_version,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        device=device.type,
        hardware=_hardware(device),
        dtype=str(pipe.unet.dtype).removeprefix("torch."),
        unet_mode=unet_mode,
        decoder_mode=decoder_mode,
        decoders=",".join(decoders),
        buckets=",".join(str(bucket) for bucket in buckets),
        sizes=",".join(f"{width}x{height}" for width, height in sizes),
        architecture=architecture,
    )


def artifacts_folder(setting: str, model_dir: str) -> Path | None:
    """Where the ``compile_artifacts`` setting says the artifacts are: None for 'off'.

    'auto' is the model's own local directory (the preset's folder, a local path, SageMaker's
    /opt/ml/model), because the artifacts are only worth what the model's architecture and the
    serving settings make them, and that directory is what an endpoint already receives at every
    start (model.tar.gz): nothing else to deploy, version or keep in step with the model. A Hub
    model's directory is its snapshot in the Hub cache, where nothing ships them: point the
    setting at a folder instead.
    """
    if setting == "off":
        return None
    if setting == "auto":
        return Path(model_dir) / ARTIFACTS_FOLDER
    return Path(setting).expanduser()


@dataclass
class ArtifactsLoad:
    """What loading found: 'loaded', 'none' (nothing for this key), 'skipped' (a file for this key
    that cannot be used) or 'off'."""

    status: str
    key: CompileKey | None
    folder: str | None = None
    artifacts: dict[str, int] = dataclasses.field(default_factory=dict)  # per kind, e.g. {'inductor': 8}
    seconds: float = 0.0
    reason: str = ""  # why nothing was loaded
    others: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # other keys' files: how they differ

    @property
    def count(self) -> int:
        return sum(self.artifacts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "key": self.key.name if self.key else None, "folder": self.folder,
                "count": self.count, "artifacts": self.artifacts, "seconds": round(self.seconds, 3),
                "reason": self.reason, "others": self.others}


def _other_keys(folder: Path, key: CompileKey) -> dict[str, list[str]]:
    """Each other sidecar in ``folder``: the fields its key differs in from ``key``."""
    others = {}
    for sidecar in sorted(folder.glob("*.json")):
        if sidecar.stem == key.name:
            continue
        try:
            document = json.loads(sidecar.read_text())
            theirs = document["key"] if document.get("format") == SIDECAR_FORMAT else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            others[sidecar.name] = [f"unreadable sidecar ({type(exc).__name__}: {exc})"]
            continue
        others[sidecar.name] = key.differences(theirs) if isinstance(theirs, dict) else ["another sidecar format"]
    return others


def _checked_bytes(path: Path, sidecar: Path, key: CompileKey) -> bytes:
    """The artifacts file's bytes when its sidecar vouches for them; ValueError saying why not."""
    if not sidecar.is_file():
        raise ValueError(f"its sidecar {sidecar.name} is missing")
    document = json.loads(sidecar.read_text())
    if document.get("format") != SIDECAR_FORMAT or document.get("key") != key.as_dict():
        raise ValueError(f"its sidecar describes another key: {key.differences(document.get('key') or {})}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != document.get("bytes") or digest != document.get("sha256"):
        raise ValueError(
            f"damaged or truncated: {len(data)} bytes, sha256 {digest[:16]}..., the sidecar says "
            f"{document.get('bytes')} bytes, sha256 {str(document.get('sha256'))[:16]}..."
        )
    return data


def load_compile_artifacts(folder: Path | None, key: CompileKey) -> ArtifactsLoad:
    """Load the artifacts of ``key`` from ``folder`` into this process's inductor cache.

    Call it after the inductor cache directory is set (``configure_compile_cache``: loading writes
    the entries there) and before anything compiles. Nothing is written to ``folder``, so a
    read-only model directory is fine. Never raises: a start without usable artifacts compiles from
    scratch, slower but correct, and the log line says why (a damaged file, another key's files).
    """
    if folder is None:
        return ArtifactsLoad("off", key)
    started = time.perf_counter()
    path, sidecar = folder / f"{key.name}.bin", folder / f"{key.name}.json"
    # 1. Not there: say what is there instead (another GPU, torch or setting), field by field.
    if not path.is_file():
        others = _other_keys(folder, key) if folder.is_dir() else {}
        result = ArtifactsLoad("none", key, str(folder), others=others, reason=f"no {path.name}")
        if others:
            logger.warning(
                "compile artifacts: none for key %s in %s; skipped %d file(s) built for other keys: %s",
                key.name, folder, len(others),
                "; ".join(f"{name} differs in {', '.join(diff)}" for name, diff in others.items()),
            )
        else:
            logger.info("compile artifacts: none found for key %s in %s; compiling from scratch", key.name, folder)
        return result
    # 2. There: checked against its sidecar, then handed to torch, which fills the cache directory.
    try:
        info = torch.compiler.load_cache_artifacts(_checked_bytes(path, sidecar, key))
        if info is None:  # torch logs why it could not read them and returns None
            raise ValueError("torch could not read them (see torch's warning above)")
    except Exception as exc:  # noqa: BLE001 - an optimisation that failed must not stop the replica
        reason = f"{type(exc).__name__}: {exc}"
        logger.warning("compile artifacts: skipped %s (%s); compiling from scratch", path, reason)
        return ArtifactsLoad("skipped", key, str(folder), seconds=time.perf_counter() - started, reason=reason)
    result = ArtifactsLoad(
        "loaded", key, str(folder), artifacts={kind: len(keys) for kind, keys in info.artifacts.items()},
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "compile artifacts: loaded %d (%s) for key %s from %s in %.2f s",
        result.count, ", ".join(f"{kind} {n}" for kind, n in result.artifacts.items()), key.name, path, result.seconds,
    )
    return result


def save_compile_artifacts(folder: Path, key: CompileKey, **about: Any) -> Path:
    """Write what this process compiled (or loaded from inductor's cache) as ``<key name>.bin`` in
    ``folder``, with its sidecar; ``about`` goes into the sidecar (e.g. the build's seconds).

    Everything compiled in this process is included, so a build process compiles only what the
    replica compiles. Raises RuntimeError when nothing was compiled.
    """
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        raise RuntimeError("nothing was compiled in this process: there are no compile artifacts to save")
    data, info = saved
    folder.mkdir(parents=True, exist_ok=True)
    path, sidecar = folder / f"{key.name}.bin", folder / f"{key.name}.json"
    document = {
        "format": SIDECAR_FORMAT,
        "key": key.as_dict(),
        "file": path.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "artifacts": {kind: len(keys) for kind, keys in info.artifacts.items()},
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **about,
    }
    # The bytes first, the sidecar that vouches for them last, each replaced in one rename: a
    # reader never sees a sidecar describing a half-written file.
    for target, content in ((path, data), (sidecar, json.dumps(document, indent=1).encode())):
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(content)
        partial.replace(target)
    logger.info("compile artifacts: saved %d bytes (%s) for key %s to %s", len(data), document["artifacts"],
                key.name, path)
    return path
