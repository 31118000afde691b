"""Where the time of one generate() call goes (text encoder, UNet, decoder, the rest), and what a
decoder costs per image.

For benchmarks, not the request path: each stage boundary synchronises the device (CUDA runs
asynchronously, so without it a stage's time would land in whichever stage waits next), which
slows the call a little; profile with separate calls from the timed ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from serve_app.batching import GenerationSpec
from serve_app.model.generator import SDTurboGenerator

STAGES = ("text_encoder", "unet", "decode")


def profile_stages(generator: SDTurboGenerator, specs: Sequence[GenerationSpec]) -> dict[str, float]:
    """Run ``generator.generate(specs)`` once; milliseconds per stage, plus ``other`` and ``total``."""
    device = generator.device
    spent = dict.fromkeys(STAGES, 0.0)
    starts: dict[str, float] = {}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def start(stage: str) -> None:
        sync()
        starts[stage] = time.perf_counter()

    def stop(stage: str) -> None:
        sync()
        spent[stage] += (time.perf_counter() - starts.pop(stage)) * 1000.0

    # 1. The text encoder and the UNet: forward hooks (the UNet runs once per step).
    handles = []
    for stage, module in (("text_encoder", generator.pipe.text_encoder), ("unet", generator.pipe.unet)):
        handles.append(module.register_forward_pre_hook(lambda *_, s=stage: start(s)))
        handles.append(module.register_forward_hook(lambda *_, s=stage: stop(s)))
    # 2. The decoder: wrap this generator's decode for the one call.
    decoders = generator.decoders
    decode = decoders.decode

    def timed_decode(name: str, latents: torch.Tensor) -> torch.Tensor:
        start("decode")
        pixels = decode(name, latents)
        stop("decode")
        return pixels

    decoders.decode = timed_decode  # type: ignore[method-assign]
    try:
        sync()
        started = time.perf_counter()
        generator.generate(specs)
        total = (time.perf_counter() - started) * 1000.0
    finally:
        del decoders.decode  # back to the class's method
        for handle in handles:
            handle.remove()
    return {**spent, "other": total - sum(spent.values()), "total": total}


def decoder_cost(vae: torch.nn.Module, latent_height: int, latent_width: int) -> dict[str, float]:
    """Parameters of ``vae``'s decoder and floating-point operations to decode one image.

    Counted by torch's FlopCounterMode on the meta device (shapes only, nothing computed), so it
    is exact for the architecture and free to run anywhere.
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in vae.decoder.parameters())
    post_quant = getattr(vae, "post_quant_conv", None)
    if post_quant is not None:
        params += sum(p.numel() for p in post_quant.parameters())
    with torch.device("meta"):
        meta = type(vae).from_config(vae.config)
    latents = torch.zeros(1, vae.config.latent_channels, latent_height, latent_width, device="meta")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        meta.decode(latents, return_dict=False)
    return {"decoder_params": float(params), "gflop_per_image": counter.get_total_flops() / 1e9}
