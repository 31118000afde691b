from serve_app.batching import GenerationJob, GenerationSpec


def spec(seed, **kw):
    return GenerationSpec(prompt=f"p{seed}", seed=seed, **kw)


def test_size_steps_guidance_and_decoder_separate_groups_but_prompts_and_seeds_do_not():
    base = spec(0)
    assert spec(1, negative_prompt="x").group_key == base.group_key
    for other in (spec(0, width=256), spec(0, num_inference_steps=2), spec(0, guidance_scale=2.0), spec(0, decoder="tiny")):
        assert other.group_key != base.group_key


def test_a_job_is_one_value_and_its_cache_key_ignores_when_it_was_submitted():
    job = GenerationJob(spec(1), "png", 90, submitted_at=1.0)
    assert job.cache_key == GenerationJob(spec(1), "png", 90, submitted_at=2.0).cache_key
    assert job.cache_key != GenerationJob(spec(1), "jpeg", 90).cache_key


def test_negative_prompt_used_only_with_guidance():
    assert not spec(0, guidance_scale=1.0).uses_guidance
    assert spec(0, guidance_scale=1.5).uses_guidance
