"""The image safety checker: device preprocessing and decision equal diffusers' own, the
refusal of flagged images, and the loading rules (pinned, local, preset; never silently random)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPImageProcessor

from serve_app.batching import GenerationSpec
from serve_app.model import SDTurboGenerator, load_pipeline, resolve_model
from serve_app.model.resolving import SafetyCheckerLoadError, resolve_safety_checker
from serve_app.model.safety import _PUBLISHED_PREPROCESSOR, ClipPreprocessing, ImageSafetyChecker

pytestmark = pytest.mark.timeout(300)


def published_processor(**changes) -> CLIPImageProcessor:
    return CLIPImageProcessor(**{**_PUBLISHED_PREPROCESSOR, **changes})


def small_checker(seed: int = 0) -> StableDiffusionSafetyChecker:
    """The checker class at toy width: the decision rule does not depend on the tower's size."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        projection_dim=16,
        vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                           patch_size=14, image_size=224),
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds.normal_()
        checker.special_care_embeds.normal_()
    return checker


def as_pil(images: torch.Tensor) -> list[Image.Image]:
    """What diffusers hands the feature extractor: 8-bit PIL images."""
    arrays = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")
    return [Image.fromarray(a) for a in arrays]


def test_device_preprocessing_matches_clip_image_processor_on_pil_images():
    processor = published_processor()
    preprocessing = ClipPreprocessing.from_processor(processor)
    generator = torch.Generator().manual_seed(0)
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
    # Down- and upscaling, square, portrait, landscape; noise (worst case) and smooth images.
    for height, width in [(512, 512), (128, 128), (768, 512), (64, 1024)]:
        noise = torch.rand(2, 3, height, width, generator=generator)
        smooth = torch.nn.functional.interpolate(
            torch.rand(2, 3, height // 8, width // 8, generator=generator), size=(height, width), mode="bilinear"
        )
        images = torch.cat([noise, smooth])
        ours = preprocessing(images)
        reference = torch.from_numpy(np.stack(processor(as_pil(images), return_tensors="np").pixel_values))
        assert ours.shape == reference.shape == (4, 3, 224, 224)
        levels = ((ours - reference) * std * 255).abs()  # difference in 8-bit levels
        # Pillow resamples in fixed point: rare one-level rounding differences, nothing more.
        assert levels.max() <= 2.01, (height, width)
        assert (levels > 0.5).float().mean() < 0.005, (height, width)


def test_unsupported_preprocessing_is_refused_not_approximated():
    with pytest.raises(SafetyCheckerLoadError, match="bicubic"):
        ClipPreprocessing.from_processor(published_processor(resample=2))
    with pytest.raises(SafetyCheckerLoadError, match="centre crop"):
        ClipPreprocessing.from_processor(published_processor(do_center_crop=False))


def thresholds_for_a_mix(checker: StableDiffusionSafetyChecker, clip_input: torch.Tensor) -> None:
    """Thresholds that flag some images, fire special-care concepts and put scores near 0."""
    with torch.no_grad():
        embeds = checker.visual_projection(checker.vision_model(clip_input)[1])
        normalised = torch.nn.functional.normalize(embeds)
        special = normalised @ torch.nn.functional.normalize(checker.special_care_embeds).t()
        concept = normalised @ torch.nn.functional.normalize(checker.concept_embeds).t()
        checker.special_care_embeds_weights.copy_(special.quantile(0.8, dim=0))
        checker.concept_embeds_weights.copy_(concept.quantile(0.95, dim=0) + 0.005)


def test_decision_is_diffusers_forward_vectorised():
    checker = small_checker()
    clip_input = torch.randn(64, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    thresholds_for_a_mix(checker, clip_input)
    _, expected = checker(clip_input=clip_input, images=np.zeros((64, 1)))
    ours = ImageSafetyChecker(checker, ClipPreprocessing.from_processor(published_processor())).classify(clip_input)
    assert ours.tolist() == expected
    assert 0 < sum(expected) < 64  # a real mix: the comparison can fail


def test_whole_path_agrees_with_diffusers_pil_path():
    checker = small_checker(seed=3)
    processor = published_processor()
    images = torch.rand(32, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    reference_input = torch.from_numpy(np.stack(processor(as_pil(images), return_tensors="np").pixel_values))
    thresholds_for_a_mix(checker, reference_input)
    _, expected = checker(clip_input=reference_input, images=np.zeros((32, 1)))
    ours = ImageSafetyChecker(checker, ClipPreprocessing.from_processor(processor)).unsafe(images)
    assert ours.tolist() == expected and 0 < sum(expected) < 32


def test_screen_blacks_out_flagged_and_forced_images_only():
    checker = small_checker()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(1.0)  # the checker itself flags nothing
        checker.special_care_embeds_weights.fill_(1.0)
    safety = ImageSafetyChecker(checker, ClipPreprocessing.from_processor(published_processor()), forced_unsafe_seeds={7})
    images = torch.rand(3, 3, 64, 64)
    before = images.clone()
    flags = safety.screen(images, seeds=[1, 7, 2])
    assert flags.tolist() == [False, True, False]
    assert torch.equal(images[0], before[0]) and torch.equal(images[2], before[2])
    assert images[1].abs().sum() == 0


def test_generator_withholds_flagged_images_and_leaves_the_batch_alone(tiny_model_dir, cache_dir):
    pipe = load_pipeline(resolved=resolve_model("tiny", None, cache_dir), device="cpu", dtype="float32")
    checker = small_checker()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(1.0)
        checker.special_care_embeds_weights.fill_(1.0)
    safety = ImageSafetyChecker(checker, ClipPreprocessing.from_processor(published_processor()), forced_unsafe_seeds={5})
    specs = [GenerationSpec(prompt=f"p{i}", seed=seed, width=64, height=64) for i, seed in enumerate([4, 5, 6])]
    screened = SDTurboGenerator(pipe, safety_checker=safety).generate(specs)
    plain = SDTurboGenerator(pipe).generate(specs)
    assert [g.flagged for g in screened] == [False, True, False]
    assert screened[1].image is None and all(g.batch_size == 3 for g in screened)
    assert screened[0].image.tobytes() == plain[0].image.tobytes()
    assert screened[2].image.tobytes() == plain[2].image.tobytes()


# --- The offline preset: the real architecture -------------------------------------------------


def test_random_preset_has_the_published_architecture_and_loads_through_from_pretrained(safety_preset_dir, cache_dir):
    resolved = resolve_safety_checker("random", "", cache_dir, forced_unsafe_seeds="3, 9")
    assert resolved.checker_dir == str(safety_preset_dir) and resolved.is_random
    assert resolved.source == "preset:random" and resolved.forced_unsafe_seeds == {3, 9}
    config = json.loads((safety_preset_dir / "config.json").read_text())
    vision = config["vision_config"]
    # CompVis/stable-diffusion-safety-checker's config.json: CLIP ViT-L/14 vision tower, projection 768.
    assert (vision["hidden_size"], vision["num_hidden_layers"], vision["num_attention_heads"], vision["patch_size"],
            vision["intermediate_size"], config["projection_dim"]) == (1024, 24, 16, 14, 4096, 768)
    safety = ImageSafetyChecker.load(resolved, "cpu", torch.float32)
    assert sum(p.numel() for p in safety.model.parameters()) > 300_000_000
    assert safety.forced_unsafe_seeds == {3, 9}
    flags = safety.screen(torch.rand(1, 3, 128, 128), seeds=[9])
    assert flags.tolist() == [True]  # forced; the random checker itself flags nothing
    assert safety.unsafe(torch.rand(1, 3, 128, 128)).tolist() == [False]


# --- Sources and failures ----------------------------------------------------------------------


def saved_small_checker(directory):
    small_checker().save_pretrained(str(directory), safe_serialization=True)
    (directory / "preprocessor_config.json").write_text(json.dumps(_PUBLISHED_PREPROCESSOR))
    return directory


def test_local_checker_and_pipeline_layouts_resolve(tmp_path, cache_dir):
    checker_dir = saved_small_checker(tmp_path / "checker")
    resolved = resolve_safety_checker(str(checker_dir), "ignored", cache_dir)
    assert resolved.checker_dir == resolved.preprocessor_dir == str(checker_dir) and not resolved.is_random
    pipeline = tmp_path / "pipeline"
    shutil.copytree(checker_dir, pipeline / "safety_checker")
    (pipeline / "feature_extractor").mkdir()
    shutil.move(pipeline / "safety_checker" / "preprocessor_config.json", pipeline / "feature_extractor")
    from_model = resolve_safety_checker("model", "", cache_dir, model_dir=str(pipeline))
    assert from_model.checker_dir == str(pipeline / "safety_checker")
    assert from_model.preprocessor_dir == str(pipeline / "feature_extractor")
    assert ImageSafetyChecker.load(from_model, "cpu", torch.float32).unsafe(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_checkpoint_missing_weights_is_refused_not_randomly_completed(tmp_path, cache_dir):
    checker_dir = saved_small_checker(tmp_path / "checker")
    weights = checker_dir / "model.safetensors"
    state = load_file(str(weights))
    del state["visual_projection.weight"]
    save_file(state, str(weights), metadata={"format": "pt"})
    resolved = resolve_safety_checker(str(checker_dir), "", cache_dir)
    with pytest.raises(SafetyCheckerLoadError, match="lacks weights"):
        ImageSafetyChecker.load(resolved, "cpu", torch.float32)


