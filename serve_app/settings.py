"""Every knob of the service, in one place.

A setting is read, in increasing priority, from
  1. the default below,
  2. the environment variable ``SDTURBO_<NAME>`` (upper case),
  3. an application argument (``serve run serve_app.app:build_app <name>=<value>``,
     or ``args:`` in a Serve config YAML).

pydantic-settings reads and converts the environment; each field's type, bounds and choices
are its validation. The container entrypoint maps SageMaker's own environment onto these names
(``container/entrypoint.py``), so this module is the single list of what can be tuned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from serve_app.batching import DECODER_NAMES, DEFAULT_DECODER
from serve_app.model.resolved import SD_PRESETS, SDXL_PRESETS  # torch-free, like this module
from serve_app.model.resolving import weights_dtype
from serve_app.model.sources import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    DEFAULT_TINY_DECODER,
    PINNED_REVISIONS,
    SAFETY_CHECKER_HUB_ID,
)
from serve_app.protocol import MODEL_NAME_PATTERN, OutputFormat

ENV_PREFIX = "SDTURBO_"

# The published SD-Turbo weights and TAESD (the tiny VAE decoder), each pinned to a Hub commit
# so a deployment never picks up changed weights silently: serve_app/model/sources.py lists every pin.
DEFAULT_MODEL_REVISION = PINNED_REVISIONS[DEFAULT_MODEL]
DEFAULT_TINY_DECODER_REVISION = PINNED_REVISIONS[DEFAULT_TINY_DECODER]
# The port SageMaker sends /ping and /invocations to: the container's default (container/entrypoint.py),
# the image's EXPOSE and HEALTHCHECK and the production Serve config, each tied to this value by a test.
SAGEMAKER_PORT = 8080
# torch.compile modes (the `compile` and `compile_decoder` settings); 'reduce-overhead' and
# 'max-autotune' replay CUDA graphs.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


@dataclass(frozen=True)
class DeviceDefaults:
    """What a setting left at its default becomes on one kind of device."""

    max_batch_size: int
    compile: str  # a COMPILE_MODES value


# The one definition of the per-device defaults: the app (``Settings.for_device``), the image, the
# Serve YAML, Terraform and both benchmarks follow it (tests/deployments/test_batching_knobs.py).
# CUDA keeps the CPU's values until the H200 run measures otherwise: the batch sweep and the
# compiled-model phase of `python -m loadtest.gpu_run` (docs/benchmarks.md, section 7) decide
# max_batch_size (16 or 32) and the compile mode ('reduce-overhead' or 'off').
DEVICE_DEFAULTS = {
    "cpu": DeviceDefaults(max_batch_size=8, compile="off"),
    "cuda": DeviceDefaults(max_batch_size=8, compile="off"),
}
# The batching knobs' defaults, named because ``@serve.batch`` (serve_app/model_replica.py) needs
# values when its class is defined, before any settings exist; each replica then sets its own.
DEFAULT_MAX_BATCH_SIZE = DEVICE_DEFAULTS["cpu"].max_batch_size
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.0


def power_of_two_buckets(max_batch_size: int) -> tuple[int, ...]:
    """1, 2, 4, ... and ``max_batch_size``: a batch pads by less than 2x, with log2(max) + 1 graphs."""
    buckets, size = {max_batch_size}, 1
    while size < max_batch_size:
        buckets.add(size)
        size *= 2
    return tuple(sorted(buckets))


# A served model's name: what a request's `model` field says (the API's pattern).
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


@dataclass(frozen=True)
class ModelSource:
    """One entry of the ``models`` setting: the name requests use, where the weights come from."""

    name: str
    source: str  # Hub id, local diffusers directory, or an offline preset
    revision: str | None  # the Hub commit; None for directories and presets

    @property
    def is_hub_id(self) -> bool:
        # The same order as serve_app.model.resolving.resolve_model: preset, directory, Hub id.
        if self.source in SD_PRESETS + SDXL_PRESETS or self.source.startswith((".", "/", "~")):
            return False
        return not Path(self.source).expanduser().exists()


def parse_models(text: str) -> tuple[ModelSource, ...]:
    """``[name=]source[@revision]`` entries, comma-separated, the default model first.

    The name defaults to the source's last path component (``tiny-xl``, ``sdxl-turbo`` for
    ``stabilityai/sdxl-turbo``, ``model`` for ``/opt/ml/model``). A Hub id needs its revision
    (a commit sha: a moving branch is never served), except those PINNED_REVISIONS pins (SD-Turbo, SDXL-Turbo).
    """
    models: list[ModelSource] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            raise ValueError(f"models: an empty entry in {text!r}")
        name, _, source = entry.rpartition("=") if "=" in entry else ("", "", entry)
        source, _, revision = source.partition("@")
        if not source:
            raise ValueError(f"models: entry {entry!r} names no source")
        name = name or source.rstrip("/").rsplit("/", 1)[-1]
        if not _MODEL_NAME.match(name):
            raise ValueError(
                f"models: {name!r} (from {entry!r}) is not a usable model name: letters, digits, '.', '_', '-', "
                "at most 64; give one with name=source"
            )
        model = ModelSource(name, source, revision or None)
        if model.is_hub_id and model.revision is None:
            if source not in PINNED_REVISIONS:
                raise ValueError(
                    f"models: {source!r} is a Hub id without a pinned revision: write {source}@<commit sha> "
                    "(a moving branch is never served)"
                )
            model = ModelSource(name, source, PINNED_REVISIONS[source])
        if not model.is_hub_id and model.revision is not None:
            raise ValueError(f"models: {entry!r}: only Hub ids take a revision")
        if any(existing.name == model.name for existing in models):
            raise ValueError(f"models: the name {model.name!r} is used twice; name them with name=source")
        models.append(model)
    return tuple(models)


def _setting(default: Any, doc: str, **bounds: Any) -> Any:
    """A field with its default, its one-line documentation (the README's table) and bounds."""
    return Field(default, description=doc, **bounds)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        # YAML `args:` may hold numbers where a setting is text (e.g. a revision of digits).
        coerce_numbers_to_str=True,
        # Bounds and choices apply to the defaults too.
        validate_default=True,
    )

    # --- Model source -----------------------------------------------------------------------
    model: str = _setting(
        DEFAULT_MODEL,
        "Hub id, local diffusers directory (e.g. /opt/ml/model), or an offline preset (random weights): "
        "'tiny' or 'sd-turbo-random' (SD-Turbo's architecture, small or full size), 'tiny-xl' or "
        "'sdxl-turbo-random' (SDXL-Turbo's).",
    )
    model_revision: str = _setting(
        DEFAULT_MODEL_REVISION,
        "Hub revision (commit sha) used when `model` is a hub id; ignored for directories and presets.",
    )
    models: str = _setting(
        "",
        "Several models behind one endpoint, chosen per request by its `model` field: comma-separated "
        "[name=]source[@revision] entries, the first the default (e.g. 'tiny,tiny-xl', or "
        "'stabilityai/sd-turbo,sdxl=stabilityai/sdxl-turbo@<sha>'); presets 'tiny-xl' and 'sdxl-turbo-random' "
        "have SDXL-Turbo's architecture. Empty: the one model of `model` and `model_revision`.",
    )
    offline: bool = _setting(
        False,
        "Never contact the Hugging Face Hub (the container sets HF_HUB_OFFLINE=1): weights come from the "
        "image, the model directory or a preset.",
    )
    cache_dir: str = _setting(
        DEFAULT_CACHE_DIR,
        "Where offline presets are built and kept.",
    )
    # --- Compute ------------------------------------------------------------------------------
    device: Literal["auto", "cuda", "cpu"] = _setting("auto", "'auto' (cuda when available), 'cuda' or 'cpu'.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = _setting(
        "auto", "'auto' (float16 on cuda, float32 on cpu), 'float16', 'bfloat16' or 'float32'."
    )
    channels_last: bool = _setting(
        False, "Channels-last memory format for UNet and VAE on CUDA (measured slower on H100: off)."
    )
    compile: Literal["auto"] | CompileMode = _setting(
        "auto",
        "torch.compile the UNet (and, unless compile_decoder says otherwise, the decoders) at warm-up for "
        "every batch bucket (compile_buckets) and size (compile_sizes); a call is padded up to its bucket: "
        "'off', 'default', 'reduce-overhead' (CUDA graphs), 'max-autotune', 'max-autotune-no-cudagraphs', "
        "or 'auto' (the device's default: off on CPU and, until measured, on CUDA). true/false mean default/off.",
    )
    attention_slicing: bool = _setting(False, "Slice attention to save memory (slower).")
    vae_slicing: bool = _setting(False, "Decode a batch one image at a time to save memory.")
    vae_tiling: bool = _setting(False, "Decode in tiles: large images in bounded memory.")
    warmup: bool = _setting(True, "Run warm-up generations before the replica reports ready.")
    # --- VAE decoders -------------------------------------------------------------------------
    decoders: str = _setting(
        DEFAULT_DECODER,
        "Decoders the model replica loads: 'full' (the model's VAE), 'tiny' (TAESD instead of the "
        "VAE) or 'full,tiny' (both; a request's `decoder` field chooses, default full).",
    )
    tiny_decoder: str = _setting(
        DEFAULT_TINY_DECODER,
        "Where TAESD is loaded from when `decoders` includes tiny: a Hub id (at "
        "tiny_decoder_revision), a local AutoencoderTiny directory, 'model:<subfolder>' (a folder "
        "of the model directory, e.g. model:vae_tiny in /opt/ml/model), or the offline preset "
        "'taesd-random' (random weights; with SDXL models TAESDXL and 'taesdxl-random' are used instead).",
    )
    tiny_decoder_revision: str = _setting(
        "",
        f"Hub revision (commit sha) of tiny_decoder; empty means the pinned commit ({DEFAULT_TINY_DECODER}, "
        "and madebyollin/taesdxl for SDXL models), and is an error for any other Hub id.",
    )
    compile_decoder: Literal["same"] | CompileMode = _setting(
        "same",
        "torch.compile mode of the loaded decoders: 'same' (as `compile`) or one of its modes, e.g. 'off' "
        "for a compiled UNet with eager decoders.",
    )
    compile_buckets: str = _setting(
        "",
        "Batch sizes the UNet and the decoders are compiled for (a batch is padded up to the next one); "
        "empty: 1, 2, 4, ... and max_batch_size.",
    )
    compile_sizes: str = _setting(
        "512x512", "Image sizes (WxH, comma-separated) the UNet and decoders are compiled for; others run eagerly."
    )
    compile_cache_dir: str = _setting(
        "",
        "Inductor/Triton cache (TORCHINDUCTOR_CACHE_DIR) kept across restarts so compiling "
        "reuses earlier results; empty: torch's default under /tmp.",
    )
    compile_artifacts: str = _setting(
        "auto",
        "Compile artifacts loaded into the compile cache before warm-up compiles (when compile or "
        "compile_decoder is on), only those built for this replica's key (torch, GPU, dtype, modes, buckets, "
        "sizes, decoders): 'auto' (the model directory's compile-cache/ folder, e.g. in /opt/ml/model), "
        "'off', or a folder. Built by `python -m serve_app.build_compile_cache` on the endpoint's GPU type.",
        min_length=1,
    )
    # --- Serving ------------------------------------------------------------------------------
    num_replicas: Literal["auto"] | PositiveInt = _setting(
        "auto", "Model replicas: 'auto' (one per GPU, 1 on CPU) or an integer."
    )
    # Batching follows the device (serve_app/device_loop.py): a request on an idle replica
    # starts at once; requests arriving while a call runs join the next call. One value per
    # knob project-wide: the Serve YAML, the GPU benchmark and Terraform's defaults follow
    # these (tests/deployments/test_batching_knobs.py).
    max_batch_size: int = _setting(
        DEFAULT_MAX_BATCH_SIZE,
        "Most requests in one pipeline call; arrivals during a running call fill the next one up to this.",
        ge=1,
        le=256,
    )
    batch_wait_timeout_s: float = _setting(
        DEFAULT_BATCH_WAIT_TIMEOUT_S,
        "How long Ray's @serve.batch gathers simultaneous arrivals before handing them to the "
        "device loop: a delay added to a request that finds the replica idle (0: starts at once). "
        "Batch size under load never depends on it.",
        ge=0,
        le=10,
    )
    max_ongoing_requests: int = _setting(
        0, "Requests one model replica holds at once; 0 means 2 x max_batch_size.", ge=0
    )
    max_queued_requests: int = _setting(
        64, "Requests waiting for a model replica beyond that; past it callers get 503. -1: unbounded.", ge=-1
    )
    request_timeout_s: float = _setting(
        50.0, "A request still unanswered after this gets 504 (below SageMaker's 60 s limit).", gt=0
    )
    ingress_replicas: int = _setting(1, "Replicas of the HTTP ingress deployment.", ge=1)
    direct_ingress: bool = _setting(
        True,
        "The ingress replica serves `port` itself, without Ray's HTTP proxy (one hop fewer). Applies where the "
        "project starts Ray (the container, loadtest.app_server); `serve run` always uses the proxy. Needs "
        "ingress_replicas=1.",
    )
    host: str = _setting("127.0.0.1", "HTTP bind address (the container sets 0.0.0.0).")
    port: int = _setting(8000, f"HTTP port (the container sets {SAGEMAKER_PORT}).", ge=1, le=65535)
    app_name: str = _setting("sd-turbo", "Ray Serve application name.")
    drain_timeout_s: float = _setting(
        25.0, "On SIGTERM, how long in-flight requests may take to finish (SageMaker kills at 30 s).", ge=0
    )
    object_store_bytes: int = _setting(
        512 * 1024 * 1024, "Ray object store size (entrypoint only); kept small for containers' /dev/shm.", ge=1
    )
    ray_temp_dir: str = _setting("/tmp/ray", "Ray's session and log directory (entrypoint only).")
    metrics_port: int = _setting(
        9090, "Port of Ray's Prometheus metrics endpoint (entrypoint only).", ge=1, le=65535
    )
    # --- Start-up ---------------------------------------------------------------------------
    startup_deadline_s: float = _setting(
        840.0,
        "If the app is not running this long after start, the container exits non-zero with Ray's "
        "reason (under `serve run` the ingress logs it); below SageMaker's 900 s start-up health check. 0: none.",
        ge=0,
    )
    # --- Request limits -----------------------------------------------------------------------
    max_body_bytes: int = _setting(64 * 1024, "Largest accepted request body (413 beyond).", ge=1)
    default_output_format: OutputFormat = _setting("jpeg", "Format when a request names none.")
    default_quality: int = _setting(90, "JPEG/WebP quality when a request names none.", ge=1, le=100)
    gpu_jpeg: bool = _setting(
        True,
        "JPEG-encode on the GPU (nvjpeg, one batched call per pipeline call, at default_quality) when the "
        "images are on CUDA and torchvision imports; other formats and qualities, and the CPU, use PIL.",
    )
    max_response_bytes: int = _setting(
        6_000_000,
        "Largest JSON response (SageMaker real-time caps payloads at 6 MB); beyond it the image "
        "goes to S3 when s3_output_bucket is set, else the request gets 413.",
        ge=1,
    )
    # --- Guardrails ---------------------------------------------------------------------------
    prompt_blocklist: str = _setting(
        "", "Comma-separated words/phrases; prompts containing one (case-insensitive) get 422."
    )
    rate_limit_per_minute: int = _setting(
        0, "Requests per minute per client IP at the ingress; 0 disables (IAM fronts SageMaker).", ge=0
    )
    rate_limit_burst: int = _setting(
        0, "Burst allowance of the rate limiter; 0 means rate_limit_per_minute.", ge=0
    )
    # --- Image safety checker and CloudWatch metrics (serve_app/model/safety.py, serve_app/emf.py)
    safety_checker: str = _setting(
        "",
        "Image safety checker run on every image: '' (off), a Hub id (e.g. "
        f"{SAFETY_CHECKER_HUB_ID}), a local checker directory, 'model' (the model "
        "directory's safety_checker/ and feature_extractor/), or 'random' (offline preset: the "
        "published architecture with random weights, flags nothing; tests). Flagged images get 422.",
    )
    safety_checker_revision: str = _setting(
        "",
        "Hub revision (commit sha) of `safety_checker`; empty: the pinned commit for "
        f"{SAFETY_CHECKER_HUB_ID}, required for any other Hub id.",
    )
    fault_injection_unsafe_seeds: str = _setting(
        "",
        "TESTING ONLY: comma-separated seeds whose images the safety checker reports as unsafe "
        "(the checker still runs; needs safety_checker). Empty: off.",
        pattern=r"^[0-9,\s]*$",
    )
    endpoint_name: str = _setting(
        "",
        "SageMaker endpoint name: the EndpointName dimension of the CloudWatch EMF metric lines "
        "written to stdout (Terraform sets it). Empty: no EMF lines.",
        max_length=255,
    )
    variant_name: str = _setting(
        "AllTraffic",
        "SageMaker production variant: the VariantName dimension of the EMF metric lines.",
        min_length=1,
        max_length=255,
    )
    # --- S3 outputs ---------------------------------------------------------------------------
    s3_output_bucket: str = _setting("", "Bucket for `delivery: s3` and for oversized responses.")
    s3_output_prefix: str = _setting("outputs/", "Key prefix of images written to S3.")
    # SigV4 presigned URLs live at most 7 days.
    s3_presign_expiry_s: int = _setting(
        3600, "Lifetime of the presigned URL returned for S3 images.", ge=1, le=7 * 24 * 3600
    )
    s3_endpoint_url: str = _setting("", "S3 endpoint override (e.g. a local emulator); empty: AWS.")
    # --- Testing ------------------------------------------------------------------------------
    fault_injection_oom_above: int = _setting(
        0, "TESTING ONLY: pipeline calls of more images than this raise a simulated CUDA OOM. 0: off.", ge=0
    )
    fault_injection_load_stall_s: float = _setting(
        0.0,
        "TESTING ONLY: the model replica stalls this long before loading (as on a hung model mount), "
        "to exercise the start-up deadline. 0: off.",
        ge=0,
    )
    # --- Browser pages ------------------------------------------------------------------------
    playground: bool = _setting(
        True, "Serve the browser playground at / (it calls /predict like any client); /docs is served either way."
    )
    # --- Cache and logs -----------------------------------------------------------------------
    cache_max_bytes: int = _setting(
        64 * 1024 * 1024, "Byte budget of the LRU cache of encoded images for seeded requests; 0 disables.", ge=0
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = _setting(
        "INFO", "Log level of the service's JSON logs."
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_as_a_switch(cls, value: Any) -> Any:
        # Before it took a mode, `compile` was a switch (SDTURBO_COMPILE=1): on is the default mode.
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return "default"
        return "off" if text in ("false", "0", "no") else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("decoders")
    @classmethod
    def _known_decoders(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",")]
        if any(name not in DECODER_NAMES for name in names) or len(set(names)) != len(names):
            raise ValueError(f"must be 'full', 'tiny' or 'full,tiny', got {value!r}")
        return value

    @field_validator("models")
    @classmethod
    def _models_parse(cls, value: str) -> str:
        if value.strip():
            parse_models(value)
        return value

    @model_validator(mode="after")
    def _one_source_of_the_models(self) -> Settings:
        if self.models.strip() and {"model", "model_revision"} & self.model_fields_set:
            raise ValueError(
                "set either `models` (a list of models) or `model`/`model_revision` (one model), not both"
            )
        return self

    @property
    def served_models(self) -> tuple[ModelSource, ...]:
        """The models this server loads, the default first: ``models``, or the one ``model``."""
        if self.models.strip():
            return parse_models(self.models)
        name = self.model.rstrip("/").rsplit("/", 1)[-1]
        one = ModelSource(name if _MODEL_NAME.match(name) else "default", self.model, None)
        return (ModelSource(one.name, one.source, self.model_revision or None) if one.is_hub_id else one,)

    @model_validator(mode="after")
    def _one_ingress_replica_owns_the_port(self) -> Settings:
        if self.direct_ingress and self.ingress_replicas > 1:
            raise ValueError(
                f"direct_ingress=true gives the HTTP port to the one ingress replica; ingress_replicas="
                f"{self.ingress_replicas} needs direct_ingress=false (SDTURBO_DIRECT_INGRESS=0), Ray's proxy then "
                "spreads requests over them"
            )
        return self

    @model_validator(mode="after")
    def _compile_shapes_parse(self) -> Settings:
        # The parsers raise ValueError with the setting named; pydantic reports it as invalid.
        _ = self.batch_buckets, self.compiled_sizes
        return self

    def for_device(self, kind: str) -> Settings:
        """These settings on a ``kind`` ('cpu' or 'cuda') device: ``max_batch_size`` left at its
        default and ``compile='auto'`` become that device's values (DEVICE_DEFAULTS)."""
        defaults = DEVICE_DEFAULTS[kind]
        update: dict[str, Any] = {}
        if "max_batch_size" not in self.model_fields_set:
            update["max_batch_size"] = defaults.max_batch_size
        if self.compile == "auto":
            update["compile"] = defaults.compile
        if not update:
            return self
        return Settings.model_validate({**self.model_dump(exclude_unset=True), **update})

    def device_kind(self, gpus: float) -> str:
        """Where the model replicas run: 'cuda' when they are given GPUs and not told 'cpu'."""
        return "cuda" if gpus and self.device != "cpu" else "cpu"

    def half_precision(self, kind: str) -> bool:
        """Whether the model replicas hold 16-bit weights on a ``kind`` device
        (serve_app.model.resolving.weights_dtype). A source's half-precision files are fetched then."""
        return weights_dtype(self.dtype, kind) in ("float16", "bfloat16")

    @property
    def unet_compile_mode(self) -> str:
        """The UNet's compile mode ('auto' is the CPU's until ``for_device`` resolves it)."""
        return DEVICE_DEFAULTS["cpu"].compile if self.compile == "auto" else self.compile

    @property
    def decoder_compile_mode(self) -> str:
        return self.unet_compile_mode if self.compile_decoder == "same" else self.compile_decoder

    @property
    def loaded_decoders(self) -> tuple[str, ...]:
        """The decoders a replica loads, the default one (DEFAULT_DECODER when loaded) first."""
        names = {name.strip() for name in self.decoders.split(",")}
        ordered = sorted(names, key=lambda name: (name != DEFAULT_DECODER, DECODER_NAMES.index(name)))
        return tuple(ordered)

    @property
    def batch_buckets(self) -> tuple[int, ...]:
        """The batch sizes the UNet and the decoders are compiled for: one list for the whole call."""
        if not self.compile_buckets.strip():
            return power_of_two_buckets(self.max_batch_size)
        try:
            buckets = sorted({int(part) for part in self.compile_buckets.split(",")})
        except ValueError:
            raise ValueError(
                f"compile_buckets must be comma-separated integers, got {self.compile_buckets!r}"
            ) from None
        if buckets[0] < 1 or buckets[-1] < self.max_batch_size:
            raise ValueError("compile_buckets must be >= 1 and reach max_batch_size")
        return tuple(buckets)

    @property
    def decoder_options(self) -> dict[str, Any]:
        """The decoder settings as the plain keyword arguments of ``serve_app.model.prepare_decoders``."""
        return {
            "names": self.loaded_decoders,
            "compile_mode": self.decoder_compile_mode,
            "buckets": self.batch_buckets,
            "sizes": self.compiled_sizes,
            "compile_cache_dir": self.compile_cache_dir,
        }

    @property
    def pipeline_options(self) -> dict[str, Any]:
        """The pipeline settings as the plain keyword arguments of ``serve_app.model.configure_pipeline``."""
        return {
            "channels_last": self.channels_last,
            "compile_mode": self.unet_compile_mode,
            "buckets": self.batch_buckets,
            "sizes": self.compiled_sizes,
            "attention_slicing": self.attention_slicing,
            "vae_slicing": self.vae_slicing,
            "vae_tiling": self.vae_tiling,
        }

    @property
    def serving_options(self) -> dict[str, Any]:
        """Everything ``serve_app.model.load_for_serving`` takes besides the resolved model: what a
        model replica loads, configures, compiles and loads compile artifacts for."""
        return {
            "device": self.device,
            "dtype": self.dtype,
            "pipeline_options": self.pipeline_options,
            "decoder_options": self.decoder_options,
            "compile_artifacts": self.compile_artifacts,
        }

    @property
    def warmup_batch_sizes(self) -> tuple[int, ...]:
        """The call sizes a replica warms up before it reports ready: a lone request and a full call."""
        return tuple(sorted({1, self.max_batch_size}))

    @property
    def compiled_sizes(self) -> tuple[tuple[int, int], ...]:
        sizes = []
        for part in self.compile_sizes.split(","):
            width, _, height = part.strip().lower().partition("x")
            if not (width.isdigit() and height.isdigit() and int(width) % 8 == 0 and int(height) % 8 == 0):
                raise ValueError(f"compile_sizes must be WxH pairs of multiples of 8, got {part!r}")
            sizes.append((int(width), int(height)))
        return tuple(sizes)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments over the environment over the defaults: no .env or secrets files.
        return init_settings, env_settings

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``SDTURBO_*`` variables of ``environ`` (the process's by default), then
        ``overrides`` (text, as ``serve run`` passes them, or typed values)."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"Unknown setting(s) {unknown}; known settings: {', '.join(sorted(cls.model_fields))}")
        from_environment = _EnvironmentSource(cls, os.environ if environ is None else environ)()
        try:
            return cls.model_validate({**from_environment, **overrides})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']} (got {error['input']!r})"
                for error in exc.errors()
            )
            raise ValueError(f"Invalid settings: {problems}") from None

    @property
    def effective_max_ongoing_requests(self) -> int:
        # Twice the batch size: one full batch runs while the next one forms.
        return self.max_ongoing_requests or 2 * self.max_batch_size

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (tests pass ``{}`` to ignore
    the developer's own SDTURBO_* variables); ``.env`` files are read the same way upstream."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


def setting_arguments(items: list[str]) -> dict[str, str]:
    """``name=value`` command-line arguments (as ``serve run`` takes them) as ``Settings.load``'s
    overrides; ValueError naming the first item without '='."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected setting=value, got {item!r}")
        overrides[name] = value
    return overrides


def offline_requested(environ: Mapping[str, str]) -> bool:
    """The ``offline`` setting as ``environ`` gives it, parsed by its field (the container reads it
    before anything else of the settings, to set HF_HUB_OFFLINE for every process it starts)."""
    name = f"{ENV_PREFIX}OFFLINE"
    return Settings.load({}, environ={name: environ[name]} if name in environ else {}).offline


def describe_settings() -> str:
    """A Markdown table of every setting (used to keep the README's table honest)."""
    rows = ["| setting | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = str(field.default).replace(str(Path.home()), "~")
        rows.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)
