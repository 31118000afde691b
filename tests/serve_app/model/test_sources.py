"""The one resolver of model / TAESD / safety-checker sources (serve_app/model/sources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.model.sources import (
    DEFAULT_MODEL,
    DEFAULT_TINY_DECODER,
    PINNED_REVISIONS,
    SAFETY_CHECKER_HUB_ID,
    SDXL_TURBO_MODEL,
    TINY_DECODER_XL,
    ModelLoadError,
    SourceRules,
    resolve_source,
)
from serve_app.settings import Settings


class KindError(ModelLoadError):
    pass


def rules(**overrides) -> SourceRules:
    built = []

    def build(cache_dir: str) -> Path:
        built.append(cache_dir)
        return Path(cache_dir) / "preset"

    fields = dict(what="thing", error=KindError, hint="Try the preset.", presets={"p": build}, model_folders=True)
    return SourceRules(**{**fields, **overrides})


def test_a_preset_is_built_into_the_cache_and_marked_random(tmp_path):
    found = resolve_source("p", "ignored", rules(), str(tmp_path))
    assert (found.local_dir, found.source_id, found.revision, found.is_random) == (tmp_path / "preset", "preset:p", None, True)


def test_paths_and_model_folders_are_used_as_they_are(tmp_path):
    local = resolve_source(str(tmp_path), "ignored", rules(), "/cache")
    assert (local.local_dir, local.is_random, local.revision) == (tmp_path, False, None)
    folder = resolve_source("model:vae_tiny", "", rules(), "/cache", model_dir=str(tmp_path))
    assert folder.local_dir == tmp_path / "vae_tiny" and folder.source_id == "model:vae_tiny"
    for escape in ("model:", "model:../x", "model:a/../../x"):
        with pytest.raises(KindError, match="inside the model directory.*Try the preset"):
            resolve_source(escape, "", rules(), "/cache", model_dir=str(tmp_path))


def test_a_hub_id_without_a_pinned_revision_is_refused_before_any_download():
    with pytest.raises(KindError, match="SDTURBO_THING_REVISION"):
        resolve_source("someone/else", "", rules(), "/cache")


def test_a_failed_download_is_the_kinds_error_with_its_hint_never_a_fallback(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KindError, match=r"Could not fetch thing 'someone/else' at revision 'abc'.*HF_HUB_OFFLINE=1.*Try the preset"):
        resolve_source("someone/else", "abc", rules(hub_patterns=[["config.json"]]), "/cache")


def test_every_pin_is_listed_once_and_the_settings_defaults_read_it():
    settings = Settings.load({}, environ={})
    assert set(PINNED_REVISIONS) == {
        DEFAULT_MODEL, DEFAULT_TINY_DECODER, SAFETY_CHECKER_HUB_ID, SDXL_TURBO_MODEL, TINY_DECODER_XL
    }
    assert (settings.model, settings.model_revision) == (DEFAULT_MODEL, PINNED_REVISIONS[DEFAULT_MODEL])
    assert settings.tiny_decoder == DEFAULT_TINY_DECODER
    assert all(len(sha) == 40 and int(sha, 16) >= 0 for sha in PINNED_REVISIONS.values())
