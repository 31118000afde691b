"""Counting prompt tokens with the model's own tokenizer, to reject (never truncate) long prompts."""

from __future__ import annotations

from transformers import CLIPTokenizer


class PromptTokenCounter:
    def __init__(self, model_dir: str):
        self._tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
        # The text encoder sees at most model_max_length tokens, two of them BOS and EOS.
        self.max_prompt_tokens = self._tokenizer.model_max_length - 2

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False).input_ids)
