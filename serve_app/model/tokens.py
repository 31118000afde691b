"""Counting prompt tokens with the model's own tokenizers, to reject (never truncate) long prompts.

SD-Turbo has one tokenizer (``tokenizer/``); SDXL-Turbo has two (``tokenizer/`` and
``tokenizer_2/``), one per text encoder, and a prompt must fit both: the limit is the smaller
of the two and the count the larger (the published pair share CLIP's vocabulary and count the
same, but a model directory could pair others). Torch-free: transformers' tokenizers run
without it, so the ingress replica counts tokens without loading torch.
"""

from __future__ import annotations

from pathlib import Path

from transformers import CLIPTokenizer

# The tokenizer folders of a diffusers pipeline directory, in the text encoders' order.
_TOKENIZER_FOLDERS = ("tokenizer", "tokenizer_2")


class PromptTokenCounter:
    def __init__(self, model_dir: str):
        self._tokenizers = [
            CLIPTokenizer.from_pretrained(model_dir, subfolder=folder)
            for folder in _TOKENIZER_FOLDERS
            if folder == "tokenizer" or (Path(model_dir) / folder).is_dir()
        ]
        # Each text encoder sees at most model_max_length tokens, two of them BOS and EOS.
        self.max_prompt_tokens = min(tokenizer.model_max_length for tokenizer in self._tokenizers) - 2

    @property
    def tokenizers(self) -> int:
        """How many tokenizers a prompt goes through (1 for SD-Turbo, 2 for SDXL-Turbo)."""
        return len(self._tokenizers)

    def count(self, text: str) -> int:
        return max(len(tokenizer(text, add_special_tokens=False).input_ids) for tokenizer in self._tokenizers)
