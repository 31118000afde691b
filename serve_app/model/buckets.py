"""Compiling the model call for fixed batch buckets: the UNet and the decoders see only bucket sizes.

``torch.compile`` with ``dynamic=False`` makes one graph per input shape, and CUDA graphs
(``reduce-overhead``, ``max-autotune``) replay one recording per shape. So the model is compiled at
warm-up for one list of batch sizes (the ``compile_buckets`` setting, by default 1, 2, 4, ... and
``max_batch_size``) and image sizes, and every call is padded up to its bucket: zero rows fill the
bucket, every operation of the UNet and the decoders works per image (no batch statistics), so the
padding cannot change the real rows, and the padded outputs are dropped. A batch above the largest
bucket runs as several bucket calls; a shape nobody compiled for runs eagerly. Requests never
compile: the request path runs under the ``eager_on_recompile`` stance.

Compiled calls run on one dedicated thread per compiled function, because CUDA graph trees are
kept per thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

# Modes whose compiled graphs replay as CUDA graphs (outputs live in a reused memory pool).
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
# Calls per bucket at warm-up: CUDA graph trees run a shape eagerly once, then record it.
WARMUP_CALLS_PER_SHAPE = 3


@dataclass
class CompileReport:
    mode: str
    buckets: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]
    seconds: float = 0.0
    per_shape_s: dict[str, float] = field(default_factory=dict)
    cache_dir: str | None = None

    @classmethod
    def start(cls, mode: str, buckets: Sequence[int], sizes: Sequence[tuple[int, int]]) -> CompileReport:
        return cls(mode, tuple(buckets), tuple(sizes), cache_dir=os.environ.get("TORCHINDUCTOR_CACHE_DIR"))


def bucket_for(size: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``size`` (``buckets`` sorted, ``size`` at most the largest)."""
    return next(b for b in buckets if b >= size)


def pad_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor`` with zero rows appended up to ``rows`` along the batch dimension."""
    missing = rows - tensor.shape[0]
    if missing <= 0:
        return tensor
    return torch.cat([tensor, tensor.new_zeros((missing, *tensor.shape[1:]))])


class BucketedCompile:
    """``fn(*batched)`` compiled for fixed batch buckets: every positional argument is a tensor whose
    first dimension is the batch, and ``fn`` returns one tensor with the same batch dimension.

    ``__call__`` pads each chunk of at most the largest bucket up to its bucket, runs the compiled
    graph on the dedicated thread and drops the padded rows of the result.
    """

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], mode: str, buckets: Sequence[int],
                 backend: str = "inductor"):
        self.name = name
        self.mode = mode
        self.buckets = tuple(sorted(set(buckets)))
        # ``backend`` other than inductor (tests: "eager") takes no mode.
        compile_mode = None if mode == "default" or backend != "inductor" else mode
        self._compiled = torch.compile(fn, mode=compile_mode, dynamic=False, backend=backend)
        self.cudagraphs = compile_mode in CUDAGRAPH_MODES
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"compiled-{name}")

    def __call__(self, *batched: torch.Tensor) -> torch.Tensor:
        rows = batched[0].shape[0]
        outputs = []
        for start in range(0, rows, self.buckets[-1]):
            chunk = [t[start : start + self.buckets[-1]] for t in batched]
            size = chunk[0].shape[0]
            bucket = bucket_for(size, self.buckets)
            padded = [pad_rows(t, bucket).contiguous() for t in chunk]
            outputs.append(self._thread.submit(self._run, padded, False).result()[:size])
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def compile_shape(self, *batched: torch.Tensor) -> float:
        """Compile (or load from the inductor cache) the graph of these exact shapes; returns seconds."""
        started = time.perf_counter()
        for _ in range(WARMUP_CALLS_PER_SHAPE if self.cudagraphs else 1):
            self._thread.submit(self._run, list(batched), True).result()
        return time.perf_counter() - started

    def _run(self, batched: list[torch.Tensor], compiling: bool) -> torch.Tensor:
        stance = "default" if compiling else "eager_on_recompile"
        with torch.inference_mode(), torch.compiler.set_stance(stance):
            if self.cudagraphs:
                torch.compiler.cudagraph_mark_step_begin()
            out = self._compiled(*batched)
            # A CUDA graph's output is overwritten by its next replay: keep a copy of our own.
            return out.clone() if self.cudagraphs else out


class CompiledUNet:
    """A pipeline's UNet whose forward runs compiled graphs of bucket sizes (installed by ``install``).

    The pipeline keeps calling ``pipe.unet(sample, t, encoder_hidden_states=..., ...)``: the module
    stays the same object (its config, dtype, hooks), only its ``forward`` is replaced on the
    instance. The batched inputs (latents, timestep, text embeddings and SDXL's pooled embeddings and
    time ids) are padded together; a call with other arguments, or at a size not compiled for, runs
    the UNet's own forward eagerly.
    """

    def __init__(self, unet: torch.nn.Module, mode: str, buckets: Sequence[int], sizes: Sequence[tuple[int, int]],
                 latent_scale: int, backend: str = "inductor"):
        self.unet = unet
        self.eager_forward = unet.forward
        self.sizes = tuple(sizes)
        self.latent_shapes = {(height // latent_scale, width // latent_scale) for width, height in self.sizes}
        self.bucketed = BucketedCompile("unet", self._step, mode, buckets, backend)
        self.calls = {"compiled": 0, "eager": 0}  # what the request path ran (tests read it)

    @classmethod
    def install(cls, pipe, mode: str, buckets: Sequence[int], sizes: Sequence[tuple[int, int]],
                backend: str = "inductor") -> CompiledUNet:
        compiled = cls(pipe.unet, mode, buckets, sizes, pipe.vae_scale_factor, backend)
        pipe.unet.forward = compiled.forward
        return compiled

    def _step(self, sample, timesteps, encoder_hidden_states, text_embeds=None, time_ids=None):
        added = None if text_embeds is None else {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.eager_forward(sample, timesteps, encoder_hidden_states, added_cond_kwargs=added,
                                  return_dict=False)[0]

    def forward(self, sample, timestep, encoder_hidden_states, *args, added_cond_kwargs=None,
                return_dict: bool = True, **kwargs):
        # 1. Only what the compiled step takes: anything else (timestep_cond, attention kwargs,
        #    ControlNet residuals) or an uncompiled image size runs the UNet's own forward.
        extra = args or any(value is not None for value in kwargs.values())
        added = added_cond_kwargs or {}
        if extra or set(added) - {"text_embeds", "time_ids"} or tuple(sample.shape[2:]) not in self.latent_shapes:
            self.calls["eager"] += 1
            return self.eager_forward(sample, timestep, encoder_hidden_states, *args,
                                      added_cond_kwargs=added_cond_kwargs, return_dict=return_dict, **kwargs)
        # 2. One timestep per row (the UNet broadcasts a scalar the same way), then the bucket call.
        rows = sample.shape[0]
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(rows).contiguous()
        batched = [sample, timesteps, encoder_hidden_states]
        if added:
            batched += [added["text_embeds"], added["time_ids"]]
        self.calls["compiled"] += 1
        out = self.bucketed(*batched)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)

    def compile(self, pipe, prompt: str = "warm-up") -> CompileReport:
        """Compile every bucket x size by running the pipeline (one step, latents out) at each: the
        UNet's inputs then have exactly the shapes and dtypes requests give it."""
        report = CompileReport.start(self.bucketed.mode, self.bucketed.buckets, self.sizes)
        started = time.perf_counter()
        captured: list[list[torch.Tensor]] = []

        def capture(*batched: torch.Tensor) -> torch.Tensor:
            captured.append(list(batched))
            return self._step(*batched)

        bucketed, self.bucketed = self.bucketed, capture  # type: ignore[assignment]
        try:
            # 1. The UNet's inputs at each size, from one eager pipeline run of one image.
            inputs = {}
            for width, height in self.sizes:
                captured.clear()
                with torch.inference_mode():
                    pipe(prompt=[prompt], num_inference_steps=1, guidance_scale=0.0, width=width, height=height,
                         output_type="latent")
                inputs[(width, height)] = captured[0]
        finally:
            self.bucketed = bucketed
        # 2. Each bucket: the captured row repeated to the bucket's size, compiled.
        for (width, height), row in inputs.items():
            for bucket in bucketed.buckets:
                batch = [t[:1].expand(bucket, *t.shape[1:]).contiguous() for t in row]
                report.per_shape_s[f"{bucket}x{width}x{height}"] = bucketed.compile_shape(*batch)
        report.seconds = time.perf_counter() - started
        self.calls = {"compiled": 0, "eager": 0}
        return report


def installed_unet(pipe) -> CompiledUNet | None:
    """The CompiledUNet installed on ``pipe.unet``, if any."""
    forward = pipe.unet.__dict__.get("forward")
    return getattr(forward, "__self__", None) if isinstance(getattr(forward, "__self__", None), CompiledUNet) else None
