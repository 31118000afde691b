import pytest

from serve_app.settings import DEFAULT_MODEL, DEFAULT_MODEL_REVISION, Settings, describe_settings


def test_defaults_point_at_pinned_sd_turbo():
    settings = Settings.load(environ={})
    assert settings.model == DEFAULT_MODEL == "stabilityai/sd-turbo"
    assert len(DEFAULT_MODEL_REVISION) == 40
    assert settings.effective_max_ongoing_requests == 2 * settings.max_batch_size


def test_environment_then_overrides_take_priority():
    env = {"SDTURBO_MAX_BATCH_SIZE": "4", "SDTURBO_COMPILE": "true", "SDTURBO_MODEL": "tiny"}
    settings = Settings.load({"max_batch_size": "6"}, environ=env)
    assert settings.max_batch_size == 6
    assert settings.compile == "default"  # the old switch's "on"
    assert Settings.load({"compile": "false"}, environ={}).compile == "off"
    assert settings.model == "tiny"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"max_batch_size": "0"}, "max_batch_size"),
        ({"device": "tpu"}, "device"),
        ({"num_replicas": "two"}, "num_replicas"),
        ({"compile": "maybe"}, "compile"),
        ({"max_batch_sise": "4"}, "Unknown setting"),
        ({"default_quality": "101"}, "default_quality"),
        ({"port": "70000"}, "port"),
        ({"request_timeout_s": "0"}, "request_timeout_s"),
        ({"default_output_format": "bmp"}, "default_output_format"),
        ({"log_level": "loud"}, "log_level"),
        ({"startup_deadline_s": "-1"}, "startup_deadline_s"),
        ({"ingress_replicas": "0"}, "ingress_replicas"),
        ({"ingress_replicas": "2"}, "ingress_replicas=2 needs direct_ingress=false"),
        ({"decoders": "tiny,fast"}, "decoders: .*must be"),
        ({"decoders": "full,full"}, "decoders: .*must be"),
        ({"compile_decoder": "fastest"}, "compile_decoder"),
        ({"compile_buckets": "1,two"}, "compile_buckets"),
        ({"compile_buckets": "1,2", "max_batch_size": "8"}, "reach max_batch_size"),
        ({"compile_sizes": "512"}, "compile_sizes"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        Settings.load(overrides, environ={})


def test_the_process_environment_is_read_by_default(monkeypatch):
    monkeypatch.setenv("SDTURBO_MAX_QUEUED_REQUESTS", "-1")
    monkeypatch.setenv("SDTURBO_NUM_REPLICAS", "3")
    settings = Settings.load()
    assert settings.max_queued_requests == -1 and settings.num_replicas == 3


def test_typed_values_from_a_serve_config_yaml_are_accepted():
    settings = Settings.load({"max_batch_size": 8, "batch_wait_timeout_s": 0.02, "model_revision": 1234}, environ={})
    assert settings.max_batch_size == 8 and settings.model_revision == "1234"
    assert Settings.load({"log_level": "debug"}, environ={}).log_level == "DEBUG"


def test_settings_are_immutable():
    settings = Settings.load(environ={})
    with pytest.raises(ValueError):
        settings.max_batch_size = 2


def test_decoder_settings_parse_into_what_a_replica_loads():
    default = Settings.load(environ={})
    assert default.loaded_decoders == ("full",) and default.decoder_compile_mode == "off"
    # Full first whatever the order given: it is the default of requests that name none.
    assert Settings.load({"decoders": "tiny, full"}, environ={}).loaded_decoders == ("full", "tiny")
    assert Settings.load({"decoders": "tiny"}, environ={}).loaded_decoders == ("tiny",)
    assert Settings.load({"max_batch_size": "12"}, environ={}).batch_buckets == (1, 2, 4, 8, 12)
    assert Settings.load({"max_batch_size": "1"}, environ={}).batch_buckets == (1,)
    explicit = Settings.load({"compile_buckets": "16,4,8", "compile_sizes": "512x512,768X512"}, environ={})
    assert explicit.batch_buckets == (4, 8, 16)
    assert explicit.compiled_sizes == ((512, 512), (768, 512))


def test_one_compile_mode_covers_the_unet_and_the_decoders_unless_the_decoders_name_their_own():
    both = Settings.load({"compile": "reduce-overhead"}, environ={})
    assert both.unet_compile_mode == both.decoder_compile_mode == "reduce-overhead"
    assert both.decoder_options["compile_mode"] == "reduce-overhead"
    unet_only = Settings.load({"compile": "default", "compile_decoder": "off"}, environ={})
    assert (unet_only.unet_compile_mode, unet_only.decoder_compile_mode) == ("default", "off")
    # The UNet and the decoders are compiled for one bucket list.
    assert both.decoder_options["buckets"] == both.batch_buckets
    # What serve_app.model.load_for_serving gets: the UNet's mode and buckets, the decoders', and
    # where the compile artifacts are looked for ('auto': the model directory's compile-cache/).
    options = both.serving_options
    assert options["pipeline_options"]["compile_mode"] == "reduce-overhead"
    assert options["pipeline_options"]["buckets"] == options["decoder_options"]["buckets"] == both.batch_buckets
    assert options["compile_artifacts"] == "auto"
    assert Settings.load({"compile_artifacts": "off"}, environ={}).serving_options["compile_artifacts"] == "off"
    with pytest.raises(ValueError, match="compile_artifacts"):
        Settings.load({"compile_artifacts": ""}, environ={})


def test_per_device_defaults_apply_only_to_what_was_left_unset(monkeypatch):
    from serve_app import settings as settings_module
    from serve_app.settings import DeviceDefaults

    monkeypatch.setitem(settings_module.DEVICE_DEFAULTS, "cuda", DeviceDefaults(max_batch_size=16, compile="reduce-overhead"))
    on_cuda = Settings.load(environ={}).for_device("cuda")
    assert (on_cuda.max_batch_size, on_cuda.compile) == (16, "reduce-overhead")
    assert on_cuda.batch_buckets == (1, 2, 4, 8, 16) and on_cuda.effective_max_ongoing_requests == 32
    on_cpu = Settings.load(environ={}).for_device("cpu")
    assert (on_cpu.max_batch_size, on_cpu.compile) == (settings_module.DEVICE_DEFAULTS["cpu"].max_batch_size, "off")
    # An operator's values (argument or environment) win over the device's.
    chosen = Settings.load({"compile": "off"}, environ={"SDTURBO_MAX_BATCH_SIZE": "4"}).for_device("cuda")
    assert (chosen.max_batch_size, chosen.compile) == (4, "off")
    # Where the replicas run: GPUs given and not told cpu.
    assert Settings.load(environ={}).device_kind(1) == "cuda"
    assert Settings.load({"device": "cpu"}, environ={}).device_kind(1) == "cpu"
    assert Settings.load(environ={}).device_kind(0) == "cpu"


def test_every_setting_is_documented():
    table = describe_settings()
    for name in Settings.model_fields:
        assert f"`SDTURBO_{name.upper()}`" in table


def test_readme_settings_table_is_current():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert describe_settings() in readme, "regenerate the README's settings table from describe_settings()"


# --- several models ---------------------------------------------------------------------------
def test_the_single_model_settings_are_a_one_item_model_list():
    from serve_app.settings import ModelSource

    assert Settings.load(environ={}).served_models == (ModelSource("sd-turbo", DEFAULT_MODEL, DEFAULT_MODEL_REVISION),)
    assert Settings.load({"model": "tiny"}, environ={}).served_models == (ModelSource("tiny", "tiny", None),)


def test_models_lists_the_served_models_default_first_with_names_and_revisions():
    from serve_app.settings import ModelSource

    settings = Settings.load({"models": "tiny-xl, tiny"}, environ={})
    assert [m.name for m in settings.served_models] == ["tiny-xl", "tiny"]
    hub = Settings.load({"models": "stabilityai/sd-turbo,xl=stabilityai/sdxl-turbo@abc123"}, environ={}).served_models
    assert hub == (
        ModelSource("sd-turbo", "stabilityai/sd-turbo", DEFAULT_MODEL_REVISION),
        ModelSource("xl", "stabilityai/sdxl-turbo", "abc123"),
    )
    # A pinned Hub id needs no @sha: it is served at its pin (serve_app/model/sources.py).
    from serve_app.model.sources import PINNED_REVISIONS, SDXL_TURBO_MODEL

    pinned = Settings.load({"models": f"tiny,{SDXL_TURBO_MODEL}"}, environ={}).served_models[1]
    assert pinned == ModelSource("sdxl-turbo", SDXL_TURBO_MODEL, PINNED_REVISIONS[SDXL_TURBO_MODEL])
    from_env = Settings.load(environ={"SDTURBO_MODELS": "tiny,tiny-xl"})
    assert [m.source for m in from_env.served_models] == ["tiny", "tiny-xl"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"models": "tiny,tiny"}, "used twice"),
        ({"models": "tiny,"}, "empty entry"),
        ({"models": "stabilityai/stable-diffusion-xl-base-1.0"}, "without a pinned revision"),
        ({"models": "tiny@abc"}, "only Hub ids take a revision"),
        ({"models": "bad name!=tiny"}, "not a usable model name"),
        ({"models": "tiny,tiny-xl", "model": "tiny"}, "either `models`"),
    ],
)
def test_bad_model_lists_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        Settings.load(overrides, environ={})
def test_the_default_decoder_and_the_decoder_names_have_one_source():
    from typing import get_args

    from serve_app.batching import DECODER_NAMES, DEFAULT_DECODER, GenerationResult, GenerationSpec
    from serve_app.protocol import DecoderName, GenerateRequest

    assert Settings.load({}, environ={}).loaded_decoders == (DEFAULT_DECODER,)
    assert Settings.load({"decoders": "tiny,full"}, environ={}).loaded_decoders[0] == DEFAULT_DECODER
    assert GenerationSpec("p", 1).decoder == GenerationResult(b"", "png", 1, 0, 0, 0).decoder == DEFAULT_DECODER
    assert get_args(DecoderName) == DECODER_NAMES
    assert get_args(GenerateRequest.model_fields["decoder"].annotation)[0] == DecoderName


def test_command_line_settings_are_name_value_pairs():
    from serve_app.settings import setting_arguments

    assert setting_arguments(["model=tiny", "compile_sizes=512x512,768x512", "tiny_decoder="]) == {
        "model": "tiny", "compile_sizes": "512x512,768x512", "tiny_decoder": ""}
    with pytest.raises(ValueError, match="expected setting=value, got 'tiny'"):
        setting_arguments(["tiny"])


@pytest.mark.parametrize("dtype", ["auto", "float16", "bfloat16", "float32"])
@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_half_precision_is_the_loaders_dtype_choice(dtype, kind):
    # The app picks which weight files to fetch without torch; the replica loads with torch.
    import torch

    from serve_app.model.loading import select_dtype

    expected = select_dtype(dtype, kind) in (torch.float16, torch.bfloat16)
    assert Settings.load({"dtype": dtype}, environ={}).half_precision(kind) is expected
