"""The VAE decoders: the model's full VAE, TAESD (the tiny decoder), and compiled versions of both.

The pipeline stops at the latents (``output_type="latent"``); a decoder turns them into images
on the device, exactly what the pipeline's own decode and "pt" post-processing give (floats in
[0, 1], NCHW), for the safety checker and the uint8 quantisation that follow. Two decoders:

* ``full``: the model's own ``AutoencoderKL`` (~49M decoder parameters): the reference images.
* ``tiny``: TAESD (``AutoencoderTiny``, ~1.2M decoder parameters), a distilled decoder of the same
  latents: about 18x fewer operations per image, with a modest loss of fine detail. Each model
  family has its own: TAESD for SD-Turbo's latents, TAESDXL for SDXL-Turbo's.

SDXL's published VAE overflows float16 while decoding (its activations pass 65,504: the images
come out NaN, i.e. black); its config says so with ``force_upcast``. Such a VAE is decoded in
float32 whatever the pipeline's precision, as diffusers' own SDXL pipeline does (its SD pipeline
ignores the flag, which SD-Turbo's VAE config also carries: that VAE stays in float16). A VAE fine-tuned
not to overflow (madebyollin/sdxl-vae-fp16-fix, ``force_upcast: false``) placed in the model
directory's ``vae/`` runs in float16 instead.

TAESD comes from the Hub at a pinned revision, a local directory, a folder of the model directory
or an offline random-weight preset, with the model's rules: a failure is a start-up error that
says what was tried, never a silent fallback to random weights.

Compilation (``torch.compile``, optional) happens at warm-up for the same fixed batch buckets and
image sizes as the UNet's (``serve_app/model/buckets.py``): a batch is padded up to the next
bucket so every call hits a graph compiled in advance, shapes that were not compiled decode
eagerly, and the request path never compiles.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline, StableDiffusionXLPipeline

from serve_app.batching import DEFAULT_DECODER
from serve_app.model.buckets import BucketedCompile, CompileReport
from serve_app.model.resolved import ResolvedDecoder
from serve_app.model.sources import ModelLoadError

logger = logging.getLogger(__name__)


def load_tiny_decoder(resolved: ResolvedDecoder, device: torch.device | str, dtype: torch.dtype) -> AutoencoderTiny:
    """Load TAESD through ``from_pretrained`` from a resolved local directory."""
    try:
        decoder, info = AutoencoderTiny.from_pretrained(
            resolved.local_dir, dtype=dtype, local_files_only=True, output_loading_info=True
        )
        # diffusers only warns about weights missing from the checkpoint (and leaves them random
        # or empty): here that is an error, never a decoder that is partly random.
        problems = {kind: info.get(kind) for kind in ("missing_keys", "mismatched_keys") if info.get(kind)}
        if problems:
            raise ValueError(f"the checkpoint does not match TAESD's architecture: {problems}")
        decoder = decoder.to(device).eval()
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"Found the tiny decoder {resolved.source_id!r} at {resolved.local_dir} but could not load it "
            f"as an AutoencoderTiny: {type(exc).__name__}: {str(exc)[:500]}"
        ) from exc
    return decoder


# --- Decoding ---------------------------------------------------------------------------------
def upcast_if_overflowing(vae: torch.nn.Module) -> bool:
    """Move a float16 SDXL VAE whose config says it overflows float16 (``force_upcast``) to
    float32, in place; returns whether it did. bfloat16 has float32's range and is left alone."""
    if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        vae.to(torch.float32)
        return True
    return False


class LatentDecoder:
    """Latents as the UNet leaves them -> images in [0, 1] (NCHW) on the same device, in the
    latents' dtype."""

    def __init__(self, name: str, vae: torch.nn.Module, sdxl: bool = False):
        self.name = name
        self.vae = vae
        self._scaling_factor = vae.config.scaling_factor
        # SDXL's VAE decodes in float32 (see the module's docstring); the latents are cast to it.
        self.upcast = upcast_if_overflowing(vae) if sdxl else False

    def images(self, latents: torch.Tensor) -> torch.Tensor:
        # The arithmetic of the pipelines' decode and their "pt" post-processing.
        scaled = (latents / self._scaling_factor).to(self.vae.dtype)
        images = self.vae.decode(scaled, return_dict=False)[0]
        # In [0, 1] after the clamp: float16 holds it exactly enough for 8-bit pixels.
        return (images / 2 + 0.5).clamp(0, 1).to(latents.dtype)

    __call__ = images


class CompiledDecoder:
    """A LatentDecoder compiled for fixed batch buckets and image sizes at warm-up
    (``serve_app/model/buckets.py``: padding to the bucket, the dedicated thread, the stances)."""

    def __init__(
        self,
        eager: LatentDecoder,
        mode: str,
        buckets: Sequence[int],
        sizes: Sequence[tuple[int, int]],
        latent_scale: int,
        backend: str = "inductor",
    ):
        self.name = eager.name
        self.eager = eager
        self.mode = mode
        self.sizes = tuple(sizes)
        self.latent_scale = latent_scale
        # Latent (height, width) of each compiled image size.
        self.latent_shapes = {(height // latent_scale, width // latent_scale) for width, height in self.sizes}
        self.bucketed = BucketedCompile(f"decode-{eager.name}", eager.images, mode, buckets, backend)
        self.buckets = self.bucketed.buckets

    def compile(self, channels: int, dtype: torch.dtype, device: torch.device) -> CompileReport:
        """Compile (or load from the inductor cache) every bucket x size; returns the timings."""
        report = CompileReport.start(self.mode, self.buckets, self.sizes)
        started = time.perf_counter()
        for latent_h, latent_w in sorted(self.latent_shapes):
            for bucket in self.buckets:
                latents = torch.zeros(bucket, channels, latent_h, latent_w, dtype=dtype, device=device)
                shape = f"{bucket}x{latent_w * self.latent_scale}x{latent_h * self.latent_scale}"
                report.per_shape_s[shape] = self.bucketed.compile_shape(latents)
        report.seconds = time.perf_counter() - started
        return report

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        if tuple(latents.shape[2:]) not in self.latent_shapes:
            return self.eager(latents)  # a size nobody compiled for: eager, never a compile here
        return self.bucketed(latents)


Decoder = LatentDecoder | CompiledDecoder


def is_sdxl(pipe: object) -> bool:
    return isinstance(pipe, StableDiffusionXLPipeline)


class DecoderSet:
    """The loaded decoders by name; ``default`` serves requests that name none."""

    def __init__(self, decoders: dict[str, Decoder], compile_reports: dict[str, CompileReport] | None = None):
        if not decoders:
            raise ValueError("at least one decoder must be loaded")
        self.decoders = decoders
        self.compile_reports = compile_reports or {}

    @classmethod
    def full_only(cls, pipe: StableDiffusionPipeline | StableDiffusionXLPipeline) -> DecoderSet:
        return cls({DEFAULT_DECODER: LatentDecoder(DEFAULT_DECODER, pipe.vae, is_sdxl(pipe))})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.decoders)

    @property
    def default(self) -> str:
        return DEFAULT_DECODER if DEFAULT_DECODER in self.decoders else self.names[0]

    def decode(self, name: str, latents: torch.Tensor) -> torch.Tensor:
        try:
            decoder = self.decoders[name]
        except KeyError:
            raise ValueError(f"decoder {name!r} is not loaded (loaded: {', '.join(self.names)})") from None
        return decoder(latents)


def configure_compile_cache(cache_dir: str) -> None:
    """Point inductor (and Triton, which caches under it) at a directory kept across restarts.

    Must run before the first compilation in the process; inductor reads the variable when it
    first needs its cache.
    """
    if cache_dir:
        Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).expanduser().resolve())


def build_decoders(
    pipe: StableDiffusionPipeline,
    names: Sequence[str] = ("full",),
    tiny: AutoencoderTiny | None = None,
    compile_mode: str = "off",
    buckets: Sequence[int] = (1,),
    sizes: Sequence[tuple[int, int]] = ((512, 512),),
    on_compiled: Callable[[str, CompileReport], None] | None = None,
) -> DecoderSet:
    """The decoders ``names`` asks for, compiled when ``compile_mode`` is not 'off'."""
    # 1. TAESD beside the VAE, or instead of it: then the pipeline's VAE is replaced, which frees
    #    the full VAE's weights (the pipeline never decodes itself: it returns latents).
    if "tiny" in names and tiny is None:
        raise ValueError("the tiny decoder was asked for but not loaded")
    if "full" not in names:
        pipe.vae = tiny
    eager = {name: LatentDecoder(name, tiny if name == "tiny" else pipe.vae, is_sdxl(pipe)) for name in names}
    if compile_mode == "off":
        return DecoderSet(eager)
    # 2. Compile each decoder for every bucket x size now, before the replica reports ready.
    decoders: dict[str, Decoder] = {}
    reports: dict[str, CompileReport] = {}
    for name, decoder in eager.items():
        compiled = CompiledDecoder(decoder, compile_mode, buckets, sizes, pipe.vae_scale_factor)
        reports[name] = compiled.compile(pipe.unet.config.out_channels, pipe.unet.dtype, pipe.device)
        decoders[name] = compiled
        if on_compiled is not None:
            on_compiled(name, reports[name])
    return DecoderSet(decoders, reports)


def prepare_decoders(
    pipe: StableDiffusionPipeline,
    tiny: ResolvedDecoder | None,
    *,
    names: Sequence[str] = ("full",),
    compile_mode: str = "off",
    buckets: Sequence[int] = (1,),
    sizes: Sequence[tuple[int, int]] = ((512, 512),),
    compile_cache_dir: str = "",
) -> DecoderSet:
    """What a model replica runs: the decoders ``names`` (the ``decoders`` setting) loaded and,
    unless ``compile_mode`` is 'off', compiled for ``buckets`` x ``sizes``.

    Called before the replica's warm-up generations, so the compile cache is in place before any
    torch.compile in the process (the UNet's ``compile`` included) needs it.
    """
    # 1. A compile cache kept across restarts, if configured.
    configure_compile_cache(compile_cache_dir)
    # 2. TAESD, in the pipeline's device and precision.
    tiny_vae = None
    if "tiny" in names:
        if tiny is None:
            raise ModelLoadError("decoders includes 'tiny' but no tiny decoder was resolved")
        tiny_vae = load_tiny_decoder(tiny, pipe.device, pipe.unet.dtype)

    # 3. Build (and compile) them; compiling is logged per decoder with its cost.
    def log_compiled(name: str, report: CompileReport) -> None:
        logger.info(
            "compiled decoder %s (mode %s) for batches %s at sizes %s in %.1f s (cache %s): %s",
            name, report.mode, report.buckets, report.sizes, report.seconds, report.cache_dir,
            {shape: round(seconds, 2) for shape, seconds in report.per_shape_s.items()},
        )

    return build_decoders(
        pipe, names, tiny_vae, compile_mode=compile_mode, buckets=buckets, sizes=sizes, on_compiled=log_compiled
    )
