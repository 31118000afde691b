"""serve_app/model/resolving.py: every weights setting (the model, TAESD, the safety checker) turned
into a checked local directory, with each source's rules, without torch; presets built once.

What loads the directories is tested beside its module: test_loading.py (the model, including
weights that fail at resolve and at load), test_decoders.py (TAESD), test_safety.py (the checker).
"""

import pytest

from serve_app.model.resolving import (
    SAFETY_CHECKER_REVISION,
    SafetyCheckerLoadError,
    ensure_preset,
    resolve_model,
    resolve_safety_checker,
    resolve_tiny_decoder,
    tiny_decoder_for_family,
)
from serve_app.model.sources import SAFETY_CHECKER_HUB_ID, TINY_DECODER_XL, ModelLoadError
from serve_app.settings import DEFAULT_TINY_DECODER_REVISION
from tests.fresh_interpreter import run_fresh


def test_built_presets_resolve_without_importing_torch_diffusers_or_transformers(tiny_model_dir, safety_preset_dir, cache_dir):
    ensure_preset("taesd-random", cache_dir)  # built here, so the new interpreter only finds them
    code = (
        "import sys\n"
        "from serve_app.model.resolving import resolve_model, resolve_safety_checker, resolve_tiny_decoder\n"
        f"cache = {cache_dir!r}\n"
        "model = resolve_model('tiny', None, cache)\n"
        "tiny = resolve_tiny_decoder('taesd-random', '', model.local_dir, cache)\n"
        "checker = resolve_safety_checker('random', '', cache, model.local_dir)\n"
        "assert model.is_random and tiny.is_random and checker.is_random\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    assert run_fresh(code) == "[]"


def test_a_missing_preset_is_built_once_through_its_builder(tmp_path):
    code = (
        "import sys\n"
        "from serve_app.model.resolving import ensure_preset\n"
        f"first = ensure_preset('taesd-random', {str(tmp_path)!r})\n"
        "assert 'diffusers' in sys.modules  # the builder ran\n"
        "stamp = (first / 'config.json').stat().st_mtime_ns\n"
        f"again = ensure_preset('taesd-random', {str(tmp_path)!r})\n"
        "assert again == first and (again / 'config.json').stat().st_mtime_ns == stamp\n"
        "print(sorted(p.name for p in first.parent.iterdir()))\n"
    )
    # One directory, no staging folder left behind.
    assert run_fresh(code) == "['taesd-random-v1']"


# --- The model --------------------------------------------------------------------------------
def test_preset_resolves_to_its_directory_and_is_marked_random(tiny_model_dir, cache_dir):
    resolved = resolve_model("tiny", None, cache_dir)
    assert resolved.local_dir == str(tiny_model_dir)
    assert resolved.model_id == "preset:tiny" and resolved.is_random and resolved.revision is None


def test_directory_without_a_pipeline_fails_with_the_path_and_the_offline_hint(tmp_path, cache_dir):
    with pytest.raises(ModelLoadError, match="model_index.json") as info:
        resolve_model(str(tmp_path), None, cache_dir)
    assert "SDTURBO_MODEL=tiny" in str(info.value)
    with pytest.raises(ModelLoadError, match="exists: False"):
        resolve_model(str(tmp_path / "missing"), None, cache_dir)


def test_unreachable_hub_model_fails_loudly_instead_of_falling_back(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(ModelLoadError) as info:
        resolve_model("stabilityai/sd-turbo", "b261bac6fd2cf515557d5d0707481eafa0485ec2", cache_dir)
    message = str(info.value)
    assert "stabilityai/sd-turbo" in message and "b261bac6" in message
    assert "HF_HUB_OFFLINE=1" in message and "SDTURBO_MODEL=tiny" in message


# --- TAESD ------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["model:", "model:../escape", "model:vae/../../x"])
def test_model_subfolder_must_stay_inside_the_model_directory(source, tmp_path, cache_dir):
    with pytest.raises(ModelLoadError, match="inside the model directory"):
        resolve_tiny_decoder(source, "", str(tmp_path), cache_dir)


def test_a_directory_that_is_not_taesd_is_refused_with_what_it_holds(tiny_model_dir, tmp_path, cache_dir):
    # The model's own full VAE folder is an AutoencoderKL: loading it as TAESD must fail.
    with pytest.raises(ModelLoadError, match="'AutoencoderKL', not an AutoencoderTiny") as info:
        resolve_tiny_decoder("model:vae", "", str(tiny_model_dir), cache_dir)
    assert "SDTURBO_DECODERS=full" in str(info.value)
    with pytest.raises(ModelLoadError, match="no config.json .exists: False"):
        resolve_tiny_decoder(str(tmp_path / "missing"), "", "/unused", cache_dir)


def test_hub_ids_need_a_pinned_revision_except_the_known_taesd(cache_dir):
    with pytest.raises(ModelLoadError, match="SDTURBO_TINY_DECODER_REVISION"):
        resolve_tiny_decoder("someone/other-taesd", "", "/unused", cache_dir)


def test_unreachable_hub_decoder_fails_loudly_with_the_pinned_revision(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    with pytest.raises(ModelLoadError) as info:
        resolve_tiny_decoder("madebyollin/taesd", "", "/unused", cache_dir)
    message = str(info.value)
    assert "madebyollin/taesd" in message and DEFAULT_TINY_DECODER_REVISION in message
    assert "HF_HUB_OFFLINE=1" in message and "taesd-random" in message


def test_each_family_gets_its_own_tiny_decoder():
    assert tiny_decoder_for_family("madebyollin/taesd", "sdxl") == TINY_DECODER_XL
    assert tiny_decoder_for_family(TINY_DECODER_XL, "sd") == "madebyollin/taesd"
    assert tiny_decoder_for_family("taesd-random", "sdxl") == "taesdxl-random"
    assert tiny_decoder_for_family("taesdxl-random", "sdxl") == "taesdxl-random"
    assert tiny_decoder_for_family("/opt/ml/model/vae_tiny", "sdxl") == "/opt/ml/model/vae_tiny"


# --- The safety checker -----------------------------------------------------------------------
def test_model_directory_without_a_checker_fails_with_what_is_missing(tiny_model_dir, cache_dir):
    with pytest.raises(SafetyCheckerLoadError, match="safety_checker/") as info:
        resolve_safety_checker("model", "", cache_dir, model_dir=str(tiny_model_dir))
    assert SAFETY_CHECKER_HUB_ID in str(info.value)


def test_unreachable_hub_checker_fails_loudly_with_its_pinned_revision(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(SafetyCheckerLoadError) as info:
        resolve_safety_checker(SAFETY_CHECKER_HUB_ID, "", cache_dir)
    assert SAFETY_CHECKER_REVISION in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)


def test_other_hub_ids_need_an_explicit_revision(cache_dir):
    with pytest.raises(SafetyCheckerLoadError, match="SDTURBO_SAFETY_CHECKER_REVISION"):
        resolve_safety_checker("someone/another-checker", "", cache_dir)


def test_off_is_none_and_fault_injection_needs_a_checker(cache_dir):
    assert resolve_safety_checker("", "", cache_dir) is None
    with pytest.raises(SafetyCheckerLoadError, match="needs a safety_checker"):
        resolve_safety_checker("", "", cache_dir, forced_unsafe_seeds="1")
    with pytest.raises(SafetyCheckerLoadError, match="integer seeds"):
        resolve_safety_checker("random", "", cache_dir, forced_unsafe_seeds="1,x")
