"""serve_app/app.py without a Ray cluster: what the builder binds."""

from serve_app import settings as settings_module
from serve_app.app import build_app_from_settings
from serve_app.cluster import ClusterResources
from serve_app.settings import DeviceDefaults, Settings
from tests.fresh_interpreter import run_fresh


def test_the_builder_binds_the_devices_defaults_for_what_was_left_unset(monkeypatch, cache_dir, tiny_model_dir):
    # A CUDA default unlike the CPU's, so the test sees which one every deployment gets.
    monkeypatch.setitem(settings_module.DEVICE_DEFAULTS, "cuda", DeviceDefaults(max_batch_size=16, compile="default"))

    def bound(gpus: int, overrides: dict | None = None) -> tuple[Settings, object]:
        settings = Settings.load({"model": "tiny", "cache_dir": cache_dir, **(overrides or {})}, environ={})
        ingress = build_app_from_settings(settings, ClusterResources(cpus=8, gpus=gpus))._bound_deployment
        models, bound_settings = ingress.init_args[0], ingress.init_args[1]
        model_app = next(iter(models.values()) if isinstance(models, dict) else iter(models))
        return bound_settings, model_app._bound_deployment

    on_gpu, model = bound(1)
    assert (on_gpu.max_batch_size, on_gpu.compile, on_gpu.batch_buckets) == (16, "default", (1, 2, 4, 8, 16))
    assert model.init_args[0].max_batch_size == 16 and model._deployment_config.max_ongoing_requests == 32
    on_cpu, _ = bound(0)
    assert (on_cpu.max_batch_size, on_cpu.compile) == (settings_module.DEVICE_DEFAULTS["cpu"].max_batch_size, "off")
    told_cpu, _ = bound(1, {"device": "cpu"})
    assert told_cpu.max_batch_size == settings_module.DEVICE_DEFAULTS["cpu"].max_batch_size


def test_building_the_app_imports_no_torch(cache_dir, tiny_model_dir, safety_preset_dir):
    """The process that starts the service (the container's entrypoint) resolves every source
    and binds the deployments without importing torch, diffusers or transformers."""
    from serve_app.model import ensure_preset

    ensure_preset("taesd-random", cache_dir)  # built here, so the new interpreter only finds it
    code = (
        "import sys\n"
        "from serve_app.app import build_app_from_settings\n"
        "from serve_app.cluster import ClusterResources\n"
        "from serve_app.settings import Settings\n"
        f"settings = Settings.load({{'model': 'tiny', 'decoders': 'full,tiny', 'tiny_decoder': 'taesd-random', 'safety_checker': 'random', 'cache_dir': {cache_dir!r}}}, environ={{}})\n"
        "build_app_from_settings(settings, ClusterResources(cpus=2, gpus=0))\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    assert run_fresh(code) == "[]"
