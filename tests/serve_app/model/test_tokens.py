"""Prompt token counting with the model's tokenizers: one for SD-Turbo, two for SDXL-Turbo."""

import shutil

from serve_app.model import PromptTokenCounter
from serve_app.model.presets import write_clip_tokenizer


def test_sd_counts_with_its_one_tokenizer(tiny_model_dir):
    counter = PromptTokenCounter(str(tiny_model_dir))
    assert counter.tokenizers == 1 and counter.max_prompt_tokens == 75
    assert counter.count("a cat") == 2


def test_sdxl_counts_with_both_tokenizers(tiny_xl_model_dir):
    counter = PromptTokenCounter(str(tiny_xl_model_dir))
    assert counter.tokenizers == 2 and counter.max_prompt_tokens == 75
    assert counter.count("a cat") == 2
    assert counter.count(" ".join(["cat"] * 76)) == 76


def test_a_prompt_must_fit_the_stricter_of_two_tokenizers(tiny_xl_model_dir, tmp_path):
    # A model directory whose second tokenizer has a shorter limit: that limit is the model's.
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_xl_model_dir / "tokenizer", model_dir / "tokenizer")
    write_clip_tokenizer(model_dir / "tokenizer_2")
    config = model_dir / "tokenizer_2" / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"model_max_length": 77', '"model_max_length": 20'))
    counter = PromptTokenCounter(str(model_dir))
    assert counter.tokenizers == 2 and counter.max_prompt_tokens == 18
