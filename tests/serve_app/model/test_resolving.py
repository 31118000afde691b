"""serve_app/model/resolving.py: every weights setting resolved without torch, presets built once.

The rules of each source (pins, hints, model folders, layouts) are tested beside what loads it:
test_loading.py (the model), test_decoders.py (TAESD), test_safety.py (the checker).
"""

import subprocess
import sys

from serve_app.model.resolving import ensure_preset


def run_fresh(code: str) -> str:
    """``code``'s stdout in a new interpreter (this one has long imported torch)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


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
