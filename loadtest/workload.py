"""Request payloads for load tests: a prompt set, sizes, seeds.  No locust import here."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PROMPTS = [
    "a photo of a red fox sitting in fresh snow, golden hour",
    "an astronaut riding a horse on the moon, digital art",
    "a bowl of ramen with a soft boiled egg, studio lighting",
    "a lighthouse on a cliff during a thunderstorm, oil painting",
    "a cozy reading nook with a cat asleep on a pile of books",
    "a futuristic city skyline at night with neon signs, rain",
    "a watercolor painting of a hummingbird drinking from a flower",
    "a vintage red bicycle leaning against a brick wall",
    "a mountain lake reflecting pine trees at sunrise",
    "a close-up portrait of an old fisherman, black and white",
    "a steaming cup of coffee on a wooden table, morning light",
    "a tiny robot watering a plant on a windowsill, 3d render",
    "a field of sunflowers under a dramatic cloudy sky",
    "a medieval castle in autumn, aerial view",
    "a bowl of fresh fruit in the style of a dutch still life",
    "a sailboat on a calm turquoise sea, wide angle",
]


def parse_sizes(text: str | None) -> list[tuple[int, int]]:
    """'512x512,256x384' -> [(512, 512), (256, 384)] as (width, height)."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        w, _, h = part.partition("x")
        wi, hi = int(w), int(h or w)
        if wi <= 0 or hi <= 0 or wi % 8 or hi % 8:
            raise ValueError(f"size {part!r}: width and height must be positive multiples of 8")
        out.append((wi, hi))
    return out


def parse_models(text: str | None) -> list[str]:
    """'tiny,tiny-xl' -> ['tiny', 'tiny-xl']: the served models a mixed workload spreads over."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--models names a model twice: {text!r}")
    return names


def parse_model_mix(models: list[str], mix: str | None) -> list[float]:
    """Each model's share of the requests, in ``models``' order: '3:1' (or '3,1') over two models
    -> [0.75, 0.25]. None or empty: equal shares (returned as [], which ``Workload`` reads so)."""
    if not mix:
        return []
    parts = [part.strip() for part in mix.replace(":", ",").split(",") if part.strip()]
    try:
        weights = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"--mix wants one number per model, like 1:1 or 3:1, got {mix!r}") from None
    if len(weights) != len(models):
        raise ValueError(f"--mix {mix!r} gives {len(weights)} shares for {len(models)} models ({', '.join(models) or 'no --models'})")
    if any(not w >= 0 or w == float("inf") for w in weights) or not sum(weights) > 0:
        raise ValueError(f"--mix {mix!r}: shares must be finite, non-negative and not all zero")
    return [w / sum(weights) for w in weights]


def parse_int_list(text: str) -> list[int]:
    vals = [int(x) for x in str(text).split(",") if x.strip()]
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"expected a comma-separated list of positive integers, got {text!r}")
    return vals


def load_prompts(path: str | None) -> list[str]:
    """A prompt file: a JSON list of strings, or one prompt per line ('#' comments)."""
    if not path:
        return list(DEFAULT_PROMPTS)
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        prompts = [str(p) for p in json.loads(text)]
    else:
        prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"no prompts in {path}")
    return prompts


@dataclass
class Workload:
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    sizes: list[tuple[int, int]] = field(default_factory=list)  # empty: let the server default
    steps: int = 1
    output_format: str | None = None
    fixed_seed: int | None = None  # None: a fresh random seed per request (defeats the result cache)
    # Served model names: each request names one (a mixed-model workload), chosen with the odds
    # of ``model_weights`` (``parse_model_mix``; empty: equal odds); empty: no `model` field, the
    # server's default model.
    models: list[str] = field(default_factory=list)
    model_weights: list[float] = field(default_factory=list)

    def make(self, rng: random.Random) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": rng.choice(self.prompts), "num_inference_steps": self.steps}
        if self.models:
            body["model"] = rng.choices(self.models, self.model_weights)[0] if self.model_weights else rng.choice(self.models)
        body["seed"] = self.fixed_seed if self.fixed_seed is not None else rng.randrange(0, 2**32)
        if self.sizes:
            w, h = rng.choice(self.sizes)
            body["width"], body["height"] = w, h
        if self.output_format:
            body["output_format"] = self.output_format
        return body
