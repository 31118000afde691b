import asyncio

import pytest

from serve_app.batching import GenerationJob, GenerationResult
from serve_app.errors import InvalidField, RequestTimeout, ResponseTooLarge
from serve_app.protocol import GenerateRequest
from tests.serve_app.fakes import make_service


class FakeModel:
    def __init__(self, delay=0.0):
        self.calls = []
        self.delay = delay

    async def __call__(self, job: GenerationJob):
        self.calls.append((job.spec, job.output_format, job.quality))
        assert job.submitted_at > 0  # stamped when handed to the model
        await asyncio.sleep(self.delay)
        spec = job.spec
        return GenerationResult(b"img-%d" % spec.seed, job.output_format, 3, 1.0, 2.0, 0.5, decoder=spec.decoder)


def service_for(model, **overrides):
    return make_service(model, overrides, token_limit=5, model_id="preset:tiny")


async def test_fills_defaults_and_reports_metadata():
    model = FakeModel()
    outcome = await service_for(model).generate(GenerateRequest(prompt="a cat", seed=7), "rid")
    spec, fmt, quality = model.calls[0]
    assert (spec.seed, fmt, quality) == (7, "jpeg", 90)
    response = outcome.response
    assert (response.seed, response.batch_size, response.cached, response.request_id) == (7, 3, False, "rid")
    assert response.timings_ms.inference == 2.0
    assert outcome.image == b"img-7" and response.image is None  # the transport encodes it


async def test_unseeded_requests_get_a_reported_random_seed_and_are_not_cached():
    model = FakeModel()
    service = service_for(model)
    first = await service.generate(GenerateRequest(prompt="a cat"), "1")
    second = await service.generate(GenerateRequest(prompt="a cat"), "2")
    assert len(model.calls) == 2 and not second.response.cached
    assert 0 <= first.response.seed < 2**32


async def test_seeded_repeat_is_served_from_cache_but_other_format_is_not():
    model = FakeModel()
    service = service_for(model)
    await service.generate(GenerateRequest(prompt="a cat", seed=1), "1")
    again = await service.generate(GenerateRequest(prompt="a cat", seed=1), "2")
    assert again.response.cached and again.image == b"img-1" and len(model.calls) == 1
    assert again.response.timings_ms.inference == 0.0
    await service.generate(GenerateRequest(prompt="a cat", seed=1, output_format="png"), "3")
    assert len(model.calls) == 2


async def test_cache_can_be_disabled():
    model = FakeModel()
    service = service_for(model, cache_max_bytes="0")
    for _ in range(2):
        await service.generate(GenerateRequest(prompt="a cat", seed=1), "x")
    assert len(model.calls) == 2


async def test_too_long_prompts_are_rejected_not_truncated():
    model = FakeModel()
    with pytest.raises(InvalidField, match="6 tokens") as info:
        await service_for(model).generate(GenerateRequest(prompt="one two three four five six"), "x")
    assert info.value.field == "prompt" and not model.calls
    with pytest.raises(InvalidField) as info:
        await service_for(model).generate(
            GenerateRequest(prompt="ok", negative_prompt="a b c d e f g", guidance_scale=2), "x"
        )
    assert info.value.field == "negative_prompt"


async def test_the_answer_size_the_transport_reports_decides_if_it_fits():
    service = service_for(FakeModel(), max_response_bytes="10", cache_max_bytes="0")
    request = GenerateRequest(prompt="a", seed=1)  # a 5-byte image: b"img-1"
    assert (await service.generate(request, "x")).image == b"img-1"  # by default: the image alone
    assert (await service.generate(request, "y", response_bytes=lambda n: n + 5)).image == b"img-1"
    with pytest.raises(ResponseTooLarge, match="makes a 11-byte response, over the 10-byte limit"):
        await service.generate(request, "z", response_bytes=lambda n: n + 6)


async def test_slow_generation_times_out_and_is_cancelled():
    model = FakeModel(delay=5)
    with pytest.raises(RequestTimeout):
        await service_for(model, request_timeout_s="0.1").generate(GenerateRequest(prompt="a"), "x")


async def test_the_decoder_is_chosen_per_request_and_reported():
    model = FakeModel()
    service = service_for(model, decoders="full,tiny")
    default = await service.generate(GenerateRequest(prompt="a cat", seed=1), "1")
    tiny = await service.generate(GenerateRequest(prompt="a cat", seed=1, decoder="tiny"), "2")
    assert [spec.decoder for spec, _, _ in model.calls] == ["full", "tiny"]  # not one cache entry
    assert (default.response.decoder, tiny.response.decoder) == ("full", "tiny")
    again = await service.generate(GenerateRequest(prompt="a cat", seed=1, decoder="tiny"), "3")
    assert again.response.cached and again.response.decoder == "tiny" and len(model.calls) == 2


async def test_a_server_with_only_the_tiny_decoder_uses_it_by_default():
    model = FakeModel()
    outcome = await service_for(model, decoders="tiny").generate(GenerateRequest(prompt="a cat"), "1")
    assert model.calls[0][0].decoder == "tiny" and outcome.response.decoder == "tiny"


@pytest.mark.parametrize("loaded, asked", [("full", "tiny"), ("tiny", "full")])
async def test_asking_for_a_decoder_that_is_not_loaded_is_a_422_naming_the_field(loaded, asked):
    model = FakeModel()
    with pytest.raises(InvalidField, match=f"decoder '{asked}' is not loaded.*loaded: {loaded}") as info:
        await service_for(model, decoders=loaded).generate(GenerateRequest(prompt="a cat", decoder=asked), "x")
    assert info.value.field == "decoder" and info.value.status_code == 422 and not model.calls


# --- sizes and steps are each model's own ------------------------------------------------------
def two_family_service(model):
    from serve_app.protocol import ModelInfo
    from serve_app.serving import ServedModel
    from tests.serve_app.fakes import WordCounter

    service = service_for(model)
    xl = ServedModel(ModelInfo(name="xl", id="preset:tiny-xl", revision=None, random_weights=True), WordCounter(5), "sdxl")
    service.models[xl.name] = xl
    return service


async def test_absent_sizes_and_steps_are_the_models_defaults():
    from serve_app.protocol import FAMILY_LIMITS

    model = FakeModel()
    service = two_family_service(model)
    for name, family in ((None, "sd"), ("xl", "sdxl")):
        outcome = await service.generate(GenerateRequest(prompt="a cat", model=name), "rid")
        limits = FAMILY_LIMITS[family]
        spec = model.calls[-1][0]
        assert (spec.width, spec.height, spec.num_inference_steps) == (limits.default_side,) * 2 + (limits.default_steps,)
        assert (outcome.response.width, outcome.response.num_inference_steps) == (limits.default_side, limits.default_steps)


@pytest.mark.parametrize("side", ["width", "height"])
async def test_a_size_over_the_models_own_limit_is_a_422_naming_the_field_and_the_limit(side):
    from serve_app.protocol import FAMILY_LIMITS

    model = FakeModel()
    service = two_family_service(model)
    too_wide_for_sd = FAMILY_LIMITS["sd"].max_side + 8
    assert too_wide_for_sd <= FAMILY_LIMITS["sdxl"].max_side  # the schema (loosest) allows it
    with pytest.raises(InvalidField) as info:
        await service.generate(GenerateRequest(prompt="a cat", **{side: too_wide_for_sd}), "rid")
    assert info.value.field == side
    assert f"{side} {too_wide_for_sd}" in str(info.value) and f"to {FAMILY_LIMITS['sd'].max_side} pixels" in str(info.value)
    assert f"{service.model_info.name}'s limits: sd-turbo models" in str(info.value)
    # The other model takes it.
    await service.generate(GenerateRequest(prompt="a cat", model="xl", **{side: too_wide_for_sd}), "rid")
    assert getattr(model.calls[-1][0], side) == too_wide_for_sd


async def test_steps_over_the_models_own_limit_are_a_422_naming_the_field(monkeypatch):
    from serve_app.protocol import FAMILY_LIMITS, SizeStepLimits

    # Both families allow 4 steps today; a family that allows fewer is refused by its own limit.
    fewer = SizeStepLimits(default_side=512, min_side=64, max_side=1024, side_multiple=8, default_steps=1, max_steps=2)
    monkeypatch.setitem(FAMILY_LIMITS, "sdxl", fewer)
    model = FakeModel()
    service = two_family_service(model)
    with pytest.raises(InvalidField) as info:
        await service.generate(GenerateRequest(prompt="a cat", model="xl", num_inference_steps=3), "rid")
    assert info.value.field == "num_inference_steps" and "at most 2 steps" in str(info.value)
    await service.generate(GenerateRequest(prompt="a cat", num_inference_steps=3), "rid")
    assert not [call for call in model.calls if call[0].model == "xl"]


def test_get_models_lists_each_models_own_limits():
    from serve_app.protocol import FAMILY_LIMITS

    listed = {entry.name: entry for entry in two_family_service(FakeModel()).model_limits()}
    for name, family in (("xl", "sdxl"), (next(iter(listed)), "sd")):
        limits, entry = FAMILY_LIMITS[family], listed[name]
        assert (entry.default_width, entry.default_height, entry.min_side, entry.max_side) == (
            limits.default_side, limits.default_side, limits.min_side, limits.max_side
        )
        assert (entry.side_multiple, entry.default_steps, entry.max_steps) == (
            limits.side_multiple, limits.default_steps, limits.max_steps
        )
    assert listed["xl"].max_side != listed[next(iter(listed))].max_side
