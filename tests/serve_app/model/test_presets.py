import json

from transformers import CLIPTokenizer

from serve_app.model import ensure_preset
from serve_app.model.presets import write_clip_tokenizer


def test_tokenizer_is_the_real_clip_vocabulary(tmp_path):
    write_clip_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    # Ids of the published openai/clip-vit tokenizer for these words.
    assert tokenizer("a cat").input_ids == [49406, 320, 2368, 49407]
    assert tokenizer.pad_token == "!"


def test_preset_is_a_saved_diffusers_pipeline_with_sd_turbo_component_types(tiny_model_dir):
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["scheduler"] == ["diffusers", "EulerAncestralDiscreteScheduler"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    scheduler = json.loads((tiny_model_dir / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "trailing"
    unet = json.loads((tiny_model_dir / "unet" / "config.json").read_text())
    assert unet["use_linear_projection"] is True
    assert list((tiny_model_dir / "unet").glob("*.safetensors"))


def test_ensure_preset_reuses_an_existing_build(tiny_model_dir, cache_dir):
    before = (tiny_model_dir / "model_index.json").stat().st_mtime_ns
    assert ensure_preset("tiny", cache_dir) == tiny_model_dir
    assert (tiny_model_dir / "model_index.json").stat().st_mtime_ns == before
