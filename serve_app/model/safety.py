"""The image safety checker: diffusers' ``StableDiffusionSafetyChecker`` run on each batch's output.

The checker is a CLIP ViT-L/14 vision tower with a projection, compared against 17 concept and
3 "special care" embeddings with per-concept thresholds (the published
``CompVis/stable-diffusion-safety-checker``). Here it runs where the images already are, on the
device, between the pipeline call and the one uint8 copy to the host:

* preprocessing is the CLIP image processor's (shortest edge to 224 with bicubic resampling,
  centre crop, normalise) done by torch on the device instead of PIL per image; it follows the
  loaded ``preprocessor_config.json`` and refuses options it does not implement;
* the decision rule is diffusers' ``StableDiffusionSafetyChecker.forward`` (scores rounded to
  three decimals, the +0.01 adjustment once a special-care concept fires), vectorised, so no
  per-image host round trip;
* flagged images are blacked out on the device, so their pixels never reach the host; the
  caller gets one flag per image and never returns a flagged one.

Sources follow the model's rules (found by ``serve_app.model.resolving``): a Hub id at a pinned
revision, a local directory, the model directory's own ``safety_checker/`` subfolder, or the
offline preset ``random`` (the published architecture with random weights, built locally and
loaded back through ``from_pretrained``). A checker that was asked for and cannot be loaded
fails start-up; it is never replaced by random weights or silently switched off.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor

from serve_app.model.resolved import ResolvedSafetyChecker
from serve_app.model.resolving import SafetyCheckerLoadError

# The published checker's config.json: CLIP ViT-L/14 vision tower (24 layers, width 1024, patch
# 14, 224 px) projected to 768. Only the vision tower is instantiated by the checker; the text
# tower's entries are kept as published.
_PUBLISHED_CONFIG = dict(
    projection_dim=768,
    logit_scale_init_value=2.6592,
    initializer_factor=1.0,
    text_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, dropout=0.0),
    vision_config=dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_attention_heads=16,
        num_hidden_layers=24,
        patch_size=14,
        image_size=224,
        dropout=0.0,
    ),
)
# The published feature_extractor/preprocessor_config.json (OpenAI CLIP's preprocessing).
_PUBLISHED_PREPROCESSOR = dict(
    size=224,
    crop_size=224,
    resample=3,  # PIL bicubic
    do_resize=True,
    do_center_crop=True,
    do_rescale=True,
    do_normalize=True,
    do_convert_rgb=True,
    image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711],
)
_BICUBIC = 3


# --- The offline preset -----------------------------------------------------------------------


def build_random_safety_checker(seed: int = 0) -> StableDiffusionSafetyChecker:
    """The published architecture with random weights; it flags nothing.

    Every threshold is 1.0 and a cosine similarity never exceeds 1, so no score is positive:
    the refusal path is exercised with ``fault_injection_unsafe_seeds`` instead.
    """
    torch.manual_seed(seed)
    checker = StableDiffusionSafetyChecker(CLIPConfig(**_PUBLISHED_CONFIG)).eval()
    with torch.no_grad():
        checker.concept_embeds.normal_()
        checker.special_care_embeds.normal_()
        checker.concept_embeds_weights.fill_(1.0)
        checker.special_care_embeds_weights.fill_(1.0)
    return checker


def save_random_safety_checker(directory: Path) -> None:
    """Write the ``random`` preset (checker and preprocessor) into ``directory``
    (``serve_app.model.resolving.ensure_safety_preset`` builds it once)."""
    build_random_safety_checker().save_pretrained(str(directory), safe_serialization=True)
    (directory / "preprocessor_config.json").write_text(
        json.dumps({**_PUBLISHED_PREPROCESSOR, "image_processor_type": "CLIPImageProcessor"}, indent=2)
    )


# --- Running it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipPreprocessing:
    """CLIP's image preprocessing (resize shortest edge, centre crop, normalise) in torch.

    Mirrors transformers' CLIP image processor on the PIL images diffusers would hand it: the
    input is quantised to 8 bits (as diffusers' PIL conversion does), resized the way PIL resizes
    an 8-bit image (``pil_bicubic_weights``: horizontal pass, round and clip to 8 bits, vertical
    pass, round and clip), cropped at ``(size - crop) // 2`` and normalised. Each resize pass is
    one matrix product, so a batch is resized on the device in two kernels.
    """

    shortest_edge: int
    crop_height: int
    crop_width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_processor(cls, processor: CLIPImageProcessor) -> ClipPreprocessing:
        size, crop = processor.size, processor.crop_size
        unsupported = []
        if not (processor.do_resize and getattr(size, "shortest_edge", None)):
            unsupported.append(f"resize to a shortest edge (size={size})")
        if int(processor.resample) != _BICUBIC:
            unsupported.append(f"bicubic resampling (resample={processor.resample})")
        if not (processor.do_center_crop and crop.height and crop.width):
            unsupported.append(f"a centre crop (crop_size={crop})")
        if not (processor.do_rescale and abs(processor.rescale_factor - 1 / 255) < 1e-12):
            unsupported.append(f"rescaling by 1/255 (rescale_factor={processor.rescale_factor})")
        if not processor.do_normalize:
            unsupported.append("normalisation")
        if unsupported:
            raise SafetyCheckerLoadError(
                "The safety checker's preprocessor_config.json asks for preprocessing this service does "
                f"not implement on the device; it implements CLIP's: {', '.join(unsupported)}"
            )
        return cls(size.shortest_edge, crop.height, crop.width, tuple(processor.image_mean), tuple(processor.image_std))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] on any device -> (N, 3, crop_h, crop_w) float32, normalised."""
        # 1. The 8-bit image diffusers would have made for PIL.
        pixels = (images.float().clamp(0, 1) * 255).round()
        # 2. Shortest edge to `shortest_edge`, the other scaled and truncated (transformers' rule).
        height, width = pixels.shape[-2:]
        short, long = min(height, width), max(height, width)
        new_long = int(self.shortest_edge * long / short)
        size = (new_long, self.shortest_edge) if width <= height else (self.shortest_edge, new_long)
        if width != size[1]:
            weights = pil_bicubic_weights(width, size[1]).to(pixels.device)
            pixels = _round_to_8_bits(pixels @ weights.t())
        if height != size[0]:
            weights = pil_bicubic_weights(height, size[0]).to(pixels.device)
            pixels = _round_to_8_bits(weights @ pixels)
        # 3. Centre crop (an image smaller than the crop is not produced by step 2).
        top, left = (size[0] - self.crop_height) // 2, (size[1] - self.crop_width) // 2
        pixels = pixels[..., top : top + self.crop_height, left : left + self.crop_width]
        # 4. Rescale and normalise.
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return (pixels / 255.0 - mean) / std


class ImageSafetyChecker:
    """Screens a batch of generated images on the device."""

    def __init__(
        self,
        model: StableDiffusionSafetyChecker,
        preprocessing: ClipPreprocessing,
        source: str = "",
        forced_unsafe_seeds: Iterable[int] = frozenset(),
    ):
        self.model = model.eval()
        self.preprocessing = preprocessing
        self.source = source
        # Testing only: images of these seeds are reported unsafe after the checker has run, so
        # the refusal path can be exercised with a checker (or random weights) that flags nothing.
        self.forced_unsafe_seeds = frozenset(forced_unsafe_seeds)

    @classmethod
    def load(cls, resolved: ResolvedSafetyChecker, device: torch.device | str, dtype: torch.dtype) -> ImageSafetyChecker:
        """Load with ``from_pretrained``; a checkpoint that lacks any weight is an error, never
        a checker with randomly initialised parts."""
        try:
            model, info = StableDiffusionSafetyChecker.from_pretrained(
                resolved.checker_dir, dtype=dtype, local_files_only=True, output_loading_info=True
            )
            processor = CLIPImageProcessor.from_pretrained(resolved.preprocessor_dir, local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise SafetyCheckerLoadError(
                f"Found safety checker {resolved.source!r} at {resolved.checker_dir} but could not load it: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if info.get("missing_keys"):
            raise SafetyCheckerLoadError(
                f"Safety checker {resolved.source!r} at {resolved.checker_dir} lacks weights "
                f"{sorted(info['missing_keys'])[:5]}...: refusing to run it with random ones"
            )
        preprocessing = ClipPreprocessing.from_processor(processor)
        return cls(model.to(device), preprocessing, resolved.source, resolved.forced_unsafe_seeds)

    @torch.inference_mode()
    def unsafe(self, images: torch.Tensor) -> torch.Tensor:
        """One bool per image (N, 3, H, W in [0, 1]), on the images' device, without a host sync."""
        return self.classify(self.preprocessing(images))

    @torch.inference_mode()
    def classify(self, clip_input: torch.Tensor) -> torch.Tensor:
        """diffusers' ``StableDiffusionSafetyChecker.forward`` decision for preprocessed images."""
        model = self.model
        # 1. CLIP image embedding.
        pooled = model.vision_model(clip_input.to(model.visual_projection.weight.dtype))[1]
        embeds = model.visual_projection(pooled)
        # 2. Cosine similarity to each concept, in float32 (as diffusers casts it).
        special = _cosine(embeds, model.special_care_embeds).float()
        concept = _cosine(embeds, model.concept_embeds).float()
        special_thresholds = model.special_care_embeds_weights.float()
        concept_thresholds = model.concept_embeds_weights.float()
        # 3. Special-care concepts in order; once one fires, every later score gets +0.01.
        adjustment = torch.zeros(embeds.shape[0], device=embeds.device)
        for index in range(special.shape[1]):
            score = torch.round(special[:, index] - special_thresholds[index] + adjustment, decimals=3)
            adjustment = torch.where(score > 0, torch.full_like(adjustment, 0.01), adjustment)
        # 4. An image is unsafe when any concept's rounded score is positive.
        scores = torch.round(concept - concept_thresholds + adjustment[:, None], decimals=3)
        return (scores > 0).any(dim=1)

    @torch.inference_mode()
    def screen(self, images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Flag unsafe images and black them out in place; returns the flags (on the device)."""
        flags = self.unsafe(images)
        if self.forced_unsafe_seeds:
            forced = [seed in self.forced_unsafe_seeds for seed in seeds]
            flags = flags | torch.tensor(forced, device=flags.device)
        images.masked_fill_(flags.view(-1, 1, 1, 1), 0.0)
        return flags


@lru_cache(maxsize=32)
def pil_bicubic_weights(in_size: int, out_size: int) -> torch.Tensor:
    """The (out_size, in_size) matrix of Pillow's bicubic resampling along one axis.

    Pillow's ``precompute_coeffs``: the kernel (a = -0.5, support 2) is widened by the scale when
    downsampling (that is its antialiasing), centred on ``(i + 0.5) * scale``, clipped to the
    image and normalised to sum 1. Pillow then rounds each pass of an 8-bit image to 8 bits.
    """

    def bicubic(x: float) -> float:
        a, x = -0.5, abs(x)
        if x < 1:
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        if x < 2:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(math.trunc(center - support + 0.5), 0)
        last = min(math.trunc(center + support + 0.5), in_size)
        row = [bicubic((x - center + 0.5) / filter_scale) for x in range(first, last)]
        total = sum(row)
        weights[out, first:last] = torch.tensor(row, dtype=torch.float64) / (total if total else 1.0)
    return weights.float()


def _round_to_8_bits(pixels: torch.Tensor) -> torch.Tensor:
    # Pillow adds one half and truncates (fixed point), then clips: round half up, not to even.
    return torch.floor(pixels + 0.5).clamp_(0, 255)


def _cosine(embeds: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
    return torch.mm(F.normalize(embeds), F.normalize(concepts).t())
