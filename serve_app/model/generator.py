"""Turning one call's GenerationSpecs (one group: equal ``group_key``) into images.

The device loop forms the calls; the generator runs each as given (splitting it only when it
does not fit in memory) and reports every pipeline run it makes (``on_pipeline_run``).

The same code runs SD-Turbo (``StableDiffusionPipeline``) and SDXL-Turbo
(``StableDiffusionXLPipeline``): both take the same call (prompts, negative prompts, steps,
guidance, size, per-request generators, ``output_type="latent"``, a step callback); SDXL adds its
pooled embeddings and time ids (original size, crop, target size: the requested size) itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image

from serve_app.batching import DEFAULT_DECODER, GenerationSpec, PipelineCallCancelled, PipelineRun
from serve_app.model.decoders import DecoderSet
from serve_app.model.jpeg import encode_jpeg_on_device, gpu_jpeg_available
from serve_app.model.safety import ImageSafetyChecker

logger = logging.getLogger(__name__)


class GenerationOutOfMemory(RuntimeError):
    """Even a single image did not fit in device memory."""


@dataclass
class GeneratedImage:
    image: Image.Image | None  # None when the safety checker flagged it: never returned
    batch_size: int  # images in the pipeline call that made this one
    inference_ms: float
    started_at: float  # wall-clock time the pipeline call started (time.time())
    flagged: bool = False  # the image safety checker flagged it (serve_app/model/safety.py)
    decoder: str = DEFAULT_DECODER  # the VAE decoder that made the pixels
    # JPEG bytes encoded on the GPU at ``jpeg_quality`` (None: not encoded there; the CPU encodes).
    jpeg: bytes | None = None
    jpeg_quality: int | None = None


class SDTurboGenerator:
    """Runs the pipeline for coalesced requests; owns no queue and no Ray state."""

    def __init__(
        self,
        pipe: StableDiffusionPipeline | StableDiffusionXLPipeline,
        simulate_oom_above: int = 0,
        safety_checker: ImageSafetyChecker | None = None,
        decoders: DecoderSet | None = None,
        on_pipeline_run: Callable[[PipelineRun], None] | None = None,
        gpu_jpeg_quality: int | None = None,
    ):
        self.pipe = pipe
        self.safety_checker = safety_checker
        self.device = pipe.device
        # The pipeline stops at latents; these turn them into pixels ("full" VAE, "tiny" TAESD).
        self.decoders = decoders or DecoderSet.full_only(pipe)
        # Per-run metrics (batch size, inference time): told once per pipeline run, on the device thread.
        self.on_pipeline_run = on_pipeline_run or (lambda run: None)
        # On CUDA with torchvision: every image is also JPEG-encoded on the device at this quality
        # (the default one), in one batched call (serve_app/model/jpeg.py). None: the CPU encodes.
        self.gpu_jpeg_quality = gpu_jpeg_quality if gpu_jpeg_quality and gpu_jpeg_available(self.device) else None
        # Testing only: lets the real service exercise its out-of-memory path without a GPU.
        self.simulate_oom_above = simulate_oom_above
        self.oom_splits = 0

    def generate(
        self, specs: Sequence[GenerationSpec], should_stop: Callable[[], bool] | None = None
    ) -> list[GeneratedImage]:
        """Images for ``specs`` (one call: equal ``group_key``), in the same order, each from its
        own seeded generator.

        ``should_stop`` (plain Python, polled after every denoising step): when it turns true the
        call raises ``PipelineCallCancelled`` instead of finishing work nobody waits for.
        """
        if not specs:
            return []
        if len({spec.group_key for spec in specs}) > 1:
            # Forming calls is the device loop's job alone (serve_app/device_loop.py).
            raise ValueError("one pipeline call takes specs of one group (model, size, steps, guidance, decoder)")
        return self._generate_splitting_on_oom(list(specs), should_stop, self.on_pipeline_run)

    def _generate_splitting_on_oom(
        self,
        specs: list[GenerationSpec],
        should_stop: Callable[[], bool] | None,
        on_run: Callable[[PipelineRun], None],
    ) -> list[GeneratedImage]:
        try:
            return self._run_pipeline(specs, should_stop, on_run)
        except torch.OutOfMemoryError as exc:
            # A batch too large for memory is split in halves and retried; only a single image
            # that does not fit is an error, and it is that request's error, not the replica's.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(specs) == 1:
                raise GenerationOutOfMemory(
                    f"a {specs[0].width}x{specs[0].height} image does not fit in device memory"
                ) from exc
            half = len(specs) // 2
            self.oom_splits += 1
            logger.warning("out of memory on a batch of %d; retrying as %d + %d", len(specs), half, len(specs) - half)
            return self._generate_splitting_on_oom(specs[:half], should_stop, on_run) + self._generate_splitting_on_oom(
                specs[half:], should_stop, on_run
            )

    def _run_pipeline(
        self,
        specs: list[GenerationSpec],
        should_stop: Callable[[], bool] | None,
        on_run: Callable[[PipelineRun], None],
    ) -> list[GeneratedImage]:
        if should_stop is not None and should_stop():
            raise PipelineCallCancelled("every request of this call was abandoned before it started")
        if self.simulate_oom_above and len(specs) > self.simulate_oom_above:
            raise torch.OutOfMemoryError(f"simulated CUDA out of memory for a batch of {len(specs)}")
        first = specs[0]
        # 1. One generator per request: a seeded request gets the same latents (and ancestral
        #    noise) whatever else shares its batch.
        generators = [torch.Generator(device=self.device).manual_seed(spec.seed) for spec in specs]
        # 2. Negative prompts only mean something with classifier-free guidance.
        negative = [spec.negative_prompt or "" for spec in specs] if first.uses_guidance else None
        started_at, started = time.time(), time.perf_counter()
        with torch.inference_mode():
            output = self.pipe(
                prompt=[spec.prompt for spec in specs],
                negative_prompt=negative,
                num_inference_steps=first.num_inference_steps,
                guidance_scale=first.guidance_scale,
                width=first.width,
                height=first.height,
                generator=generators,
                output_type="latent",
                callback_on_step_end=_stop_when(should_stop, first.num_inference_steps) if should_stop else None,
            )
            # 3. Decode with the group's decoder ("full" VAE or "tiny" TAESD) on the device.
            images = self.decoders.decode(first.decoder, output.images)
            # 4. The image safety checker (when configured) screens the batch on the device and
            #    blacks out what it flags, so flagged pixels never reach the host.
            flagged = self.safety_checker.screen(images, [s.seed for s in specs]) if self.safety_checker else None
            # 5. Quantise to uint8 on the device and copy once: a quarter of the bytes of the
            #    float32 copy diffusers' PIL path makes, and no float maths on the CPU (measured on
            #    an H100: 66 ms -> 1 ms for 16 images at 512x512). This copy is the only sync.
            quantised = (images * 255).round_().to(torch.uint8)
            jpegs = self._gpu_jpegs(quantised, flagged)
            pixels = to_host(quantised.permute(0, 2, 3, 1).contiguous()).numpy()
            flags = flagged.tolist() if flagged is not None else [False] * len(specs)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        on_run(PipelineRun(len(specs), elapsed_ms))
        return [
            GeneratedImage(
                None if flag else Image.fromarray(array), len(specs), elapsed_ms, started_at, flag, first.decoder,
                None if flag else jpeg, None if flag or jpeg is None else self.gpu_jpeg_quality,
            )
            for array, flag, jpeg in zip(pixels, flags, jpegs, strict=True)
        ]

    def _gpu_jpegs(self, quantised: torch.Tensor, flagged: torch.Tensor | None) -> list[bytes | None]:
        """The call's images JPEG-encoded on the device (blacked-out ones included: their bytes are
        never returned), or None each where the GPU does not encode."""
        if self.gpu_jpeg_quality is None:
            return [None] * len(quantised)
        return encode_jpeg_on_device(quantised, self.gpu_jpeg_quality)

    def device_stats(self) -> dict[str, float]:
        """GPU memory (and utilisation where NVML is available); empty on CPU."""
        if self.device.type != "cuda":
            return {}
        stats: dict[str, float] = {
            "memory_allocated_bytes": torch.cuda.memory_allocated(self.device),
            "memory_peak_bytes": torch.cuda.max_memory_allocated(self.device),
        }
        try:
            stats["utilization_percent"] = torch.cuda.utilization(self.device)
        except Exception:  # noqa: BLE001 - NVML missing: the memory figures still count
            pass
        return stats

    def warmup(self, batch_sizes: Sequence[int] = (1,), width: int = 512, height: int = 512) -> float:
        """Run throw-away generations (allocator, cuDNN autotune, torch.compile); returns ms.

        Its runs are not reported to ``on_pipeline_run``: the metrics count the calls that served
        requests, not the replica's start-up.
        """
        started = time.perf_counter()
        for decoder in self.decoders.names:
            for size in batch_sizes:
                specs = [
                    GenerationSpec(prompt="warm-up", seed=i, width=width, height=height, decoder=decoder)
                    for i in range(size)
                ]
                self._generate_splitting_on_oom(specs, None, _not_reported)
        return (time.perf_counter() - started) * 1000.0


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` copied to the host: from CUDA through pinned (page-locked) memory, which the copy
    engine writes directly (pageable memory is staged through a pinned bounce buffer by the driver).
    torch's caching host allocator keeps the pinned blocks, so this is no new allocation per call.
    The copy is queued on the current stream and waited for right here: its one synchronisation."""
    if tensor.device.type != "cuda":
        return tensor.cpu()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()
    return host


def _not_reported(run: PipelineRun) -> None:
    """Where a pipeline run is not counted (warm-up)."""


def _stop_when(should_stop: Callable[[], bool], steps: int) -> Callable:
    """A diffusers ``callback_on_step_end`` that aborts the call (before the VAE decode, too)."""

    def callback(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        if should_stop():
            raise PipelineCallCancelled(f"stopped after step {step + 1} of {steps}: every request was abandoned")
        return callback_kwargs

    return callback
