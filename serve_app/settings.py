"""Every knob of the service, in one place.

A setting is read, in increasing priority, from
  1. the default below,
  2. the environment variable ``SDTURBO_<NAME>`` (upper case),
  3. an application argument (``serve run serve_app.app:build_app <name>=<value>``,
     or ``args:`` in a Serve config YAML).

The container entrypoint maps SageMaker's own environment onto these names
(``container/entrypoint.py``), so this module is the single list of what can be tuned.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "SDTURBO_"

# The published SD-Turbo weights, pinned to the commit this service was built against, so a
# deployment never picks up a changed model silently.
DEFAULT_MODEL = "stabilityai/sd-turbo"
DEFAULT_MODEL_REVISION = "b261bac6fd2cf515557d5d0707481eafa0485ec2"
# TAESD, the tiny VAE decoder, and the Hub commit of it this service pins (the revision of
# madebyollin/taesd that public projects pin for config.json + diffusion_pytorch_model.safetensors).
DEFAULT_TINY_DECODER = "madebyollin/taesd"
DEFAULT_TINY_DECODER_REVISION = "614f76814bbe30edbe2e627ace1c2234c81a2c0e"
DECODER_NAMES = ("full", "tiny")
COMPILE_DECODER_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

OUTPUT_FORMATS = ("jpeg", "png", "webp")


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    # --- Model source -----------------------------------------------------------------------
    model: str = _setting(
        DEFAULT_MODEL,
        "Hub id, local diffusers directory (e.g. /opt/ml/model), or an offline preset: "
        "'tiny' (random weights, small) or 'sd-turbo-random' (random weights, full size).",
    )
    model_revision: str = _setting(
        DEFAULT_MODEL_REVISION,
        "Hub revision (commit sha) used when `model` is a hub id; ignored for directories and presets.",
    )
    cache_dir: str = _setting(
        str(Path.home() / ".cache" / "sd-turbo-serve"),
        "Where offline presets are built and kept.",
    )
    # --- Compute ------------------------------------------------------------------------------
    device: str = _setting("auto", "'auto' (cuda when available), 'cuda' or 'cpu'.")
    dtype: str = _setting(
        "auto", "'auto' (float16 on cuda, float32 on cpu), 'float16', 'bfloat16' or 'float32'."
    )
    channels_last: bool = _setting(
        False, "Channels-last memory format for UNet and VAE on CUDA (measured slower on H100: off)."
    )
    compile: bool = _setting(False, "torch.compile the UNet (slower start, faster steady state).")
    attention_slicing: bool = _setting(False, "Slice attention to save memory (slower).")
    vae_slicing: bool = _setting(False, "Decode a batch one image at a time to save memory.")
    vae_tiling: bool = _setting(False, "Decode in tiles: large images in bounded memory.")
    warmup: bool = _setting(True, "Run warm-up generations before the replica reports ready.")
    # --- VAE decoders -------------------------------------------------------------------------
    decoders: str = _setting(
        "full",
        "Decoders the model replica loads: 'full' (the model's VAE), 'tiny' (TAESD instead of the "
        "VAE) or 'full,tiny' (both; a request's `decoder` field chooses, default full).",
    )
    tiny_decoder: str = _setting(
        DEFAULT_TINY_DECODER,
        "Where TAESD is loaded from when `decoders` includes tiny: a Hub id (at "
        "tiny_decoder_revision), a local AutoencoderTiny directory, 'model:<subfolder>' (a folder "
        "of the model directory, e.g. model:vae_tiny in /opt/ml/model), or the offline preset "
        "'taesd-random' (random weights).",
    )
    tiny_decoder_revision: str = _setting(
        "",
        f"Hub revision (commit sha) of tiny_decoder; empty means the pinned {DEFAULT_TINY_DECODER} "
        "commit, and is an error for any other Hub id.",
    )
    compile_decoder: str = _setting(
        "off",
        "torch.compile the loaded decoders at warm-up for fixed batch buckets: 'off', 'default', "
        "'reduce-overhead' (CUDA graphs), 'max-autotune' or 'max-autotune-no-cudagraphs'.",
    )
    compile_decoder_buckets: str = _setting(
        "",
        "Batch sizes the decoders are compiled for (a batch is padded up to the next one); "
        "empty: 1, 2, 4, ... and max_batch_size.",
    )
    compile_decoder_sizes: str = _setting(
        "512x512", "Image sizes (WxH, comma-separated) the decoders are compiled for; others decode eagerly."
    )
    compile_cache_dir: str = _setting(
        "",
        "Inductor/Triton cache (TORCHINDUCTOR_CACHE_DIR) kept across restarts so compiling "
        "reuses earlier results; empty: torch's default under /tmp.",
    )
    # --- Serving ------------------------------------------------------------------------------
    num_replicas: str = _setting("auto", "Model replicas: 'auto' (one per GPU, 1 on CPU) or an integer.")
    max_batch_size: int = _setting(8, "Most requests coalesced into one pipeline call.")
    batch_wait_timeout_s: float = _setting(
        0.02, "How long a partial batch waits for more requests before running."
    )
    max_ongoing_requests: int = _setting(
        0, "Requests one model replica holds at once; 0 means 2 x max_batch_size."
    )
    max_queued_requests: int = _setting(
        64, "Requests waiting for a model replica beyond that; past it callers get 503. -1: unbounded."
    )
    request_timeout_s: float = _setting(
        50.0, "A request still unanswered after this gets 504 (below SageMaker's 60 s limit)."
    )
    ingress_replicas: int = _setting(1, "Replicas of the HTTP ingress deployment.")
    host: str = _setting("127.0.0.1", "HTTP bind address (the container sets 0.0.0.0).")
    port: int = _setting(8000, "HTTP port (the container sets 8080).")
    app_name: str = _setting("sd-turbo", "Ray Serve application name.")
    drain_timeout_s: float = _setting(
        25.0, "On SIGTERM, how long in-flight requests may take to finish (SageMaker kills at 30 s)."
    )
    object_store_bytes: int = _setting(
        512 * 1024 * 1024, "Ray object store size (entrypoint only); kept small for containers' /dev/shm."
    )
    ray_temp_dir: str = _setting("/tmp/ray", "Ray's session and log directory (entrypoint only).")
    metrics_port: int = _setting(9090, "Port of Ray's Prometheus metrics endpoint (entrypoint only).")
    # --- Request limits -----------------------------------------------------------------------
    max_body_bytes: int = _setting(64 * 1024, "Largest accepted request body (413 beyond).")
    default_output_format: str = _setting("jpeg", "Format when a request names none.")
    default_quality: int = _setting(90, "JPEG/WebP quality when a request names none.")
    max_response_bytes: int = _setting(
        6_000_000,
        "Largest JSON response (SageMaker real-time caps payloads at 6 MB); beyond it the image "
        "goes to S3 when s3_output_bucket is set, else the request gets 413.",
    )
    # --- Guardrails ---------------------------------------------------------------------------
    prompt_blocklist: str = _setting(
        "", "Comma-separated words/phrases; prompts containing one (case-insensitive) get 422."
    )
    rate_limit_per_minute: int = _setting(
        0, "Requests per minute per client IP at the ingress; 0 disables (IAM fronts SageMaker)."
    )
    rate_limit_burst: int = _setting(0, "Burst allowance of the rate limiter; 0 means rate_limit_per_minute.")
    # --- S3 outputs ---------------------------------------------------------------------------
    s3_output_bucket: str = _setting("", "Bucket for `delivery: s3` and for oversized responses.")
    s3_output_prefix: str = _setting("outputs/", "Key prefix of images written to S3.")
    s3_presign_expiry_s: int = _setting(3600, "Lifetime of the presigned URL returned for S3 images.")
    s3_endpoint_url: str = _setting("", "S3 endpoint override (e.g. a local emulator); empty: AWS.")
    # --- Testing ------------------------------------------------------------------------------
    fault_injection_oom_above: int = _setting(
        0, "TESTING ONLY: pipeline calls of more images than this raise a simulated CUDA OOM. 0: off."
    )
    # --- Cache and logs -----------------------------------------------------------------------
    cache_max_bytes: int = _setting(
        64 * 1024 * 1024, "Byte budget of the LRU cache of encoded images for seeded requests; 0 disables."
    )
    log_level: str = _setting("INFO", "Log level of the service's JSON logs.")

    # ------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``SDTURBO_*`` environment variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        types = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.name, raw, types[f.name])
        unknown = sorted(set(overrides or {}) - set(types))
        if unknown:
            raise ValueError(
                f"Unknown setting(s) {unknown}; known settings: {', '.join(sorted(types))}"
            )
        for name, raw in (overrides or {}).items():
            values[name] = _coerce(name, raw, types[name])
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if self.max_batch_size < 1:
            problems.append("max_batch_size must be >= 1")
        if self.batch_wait_timeout_s < 0:
            problems.append("batch_wait_timeout_s must be >= 0")
        if self.num_replicas != "auto" and not (self.num_replicas.isdigit() and int(self.num_replicas) >= 1):
            problems.append("num_replicas must be 'auto' or a positive integer")
        if self.device not in ("auto", "cuda", "cpu"):
            problems.append("device must be auto, cuda or cpu")
        if self.dtype not in ("auto", "float16", "bfloat16", "float32"):
            problems.append("dtype must be auto, float16, bfloat16 or float32")
        if self.default_output_format not in OUTPUT_FORMATS:
            problems.append(f"default_output_format must be one of {OUTPUT_FORMATS}")
        if self.request_timeout_s <= 0:
            problems.append("request_timeout_s must be > 0")
        problems.extend(self._decoder_problems())
        if problems:
            raise ValueError("Invalid settings: " + "; ".join(problems))

    def _decoder_problems(self) -> list[str]:
        problems = []
        names = [name.strip() for name in self.decoders.split(",")]
        if not names or any(name not in DECODER_NAMES for name in names) or len(set(names)) != len(names):
            problems.append(f"decoders must be 'full', 'tiny' or 'full,tiny', got {self.decoders!r}")
        if self.compile_decoder not in COMPILE_DECODER_MODES:
            problems.append(f"compile_decoder must be one of {COMPILE_DECODER_MODES}")
        for parse in (lambda: self.decoder_compile_buckets, lambda: self.decoder_compile_sizes):
            try:
                parse()
            except ValueError as exc:
                problems.append(str(exc))
        return problems

    @property
    def loaded_decoders(self) -> tuple[str, ...]:
        """The decoders a replica loads, the default one (full when loaded) first."""
        names = {name.strip() for name in self.decoders.split(",")}
        return tuple(name for name in DECODER_NAMES if name in names)

    @property
    def decoder_compile_buckets(self) -> tuple[int, ...]:
        if not self.compile_decoder_buckets.strip():
            # Powers of two: a batch pads by less than 2x, with log2(max) + 1 compiled graphs.
            buckets, size = {self.max_batch_size}, 1
            while size < self.max_batch_size:
                buckets.add(size)
                size *= 2
            return tuple(sorted(buckets))
        try:
            buckets = sorted({int(part) for part in self.compile_decoder_buckets.split(",")})
        except ValueError:
            raise ValueError(
                f"compile_decoder_buckets must be comma-separated integers, got {self.compile_decoder_buckets!r}"
            ) from None
        if buckets[0] < 1 or buckets[-1] < self.max_batch_size:
            raise ValueError("compile_decoder_buckets must be >= 1 and reach max_batch_size")
        return tuple(buckets)

    @property
    def decoder_compile_sizes(self) -> tuple[tuple[int, int], ...]:
        sizes = []
        for part in self.compile_decoder_sizes.split(","):
            width, _, height = part.strip().lower().partition("x")
            if not (width.isdigit() and height.isdigit() and int(width) % 8 == 0 and int(height) % 8 == 0):
                raise ValueError(f"compile_decoder_sizes must be WxH pairs of multiples of 8, got {part!r}")
            sizes.append((int(width), int(height)))
        return tuple(sizes)

    @property
    def effective_max_ongoing_requests(self) -> int:
        # Twice the batch size: one full batch runs while the next one forms.
        return self.max_ongoing_requests or 2 * self.max_batch_size

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, raw: Any, typ: Any) -> Any:
    if not isinstance(raw, str):
        return raw if typ is not float else float(raw)
    try:
        if typ is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"Setting {name!r}: cannot read {raw!r} as {typ.__name__}") from None


def describe_settings() -> str:
    """A Markdown table of every setting (used to keep the README's table honest)."""
    rows = ["| setting | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        default = str(f.default).replace(str(Path.home()), "~")
        rows.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | `{default}` | {f.metadata['doc']} |")
    return "\n".join(rows)
