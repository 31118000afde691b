from serve_app.batching import GenerationSpec, group_compatible


def spec(seed, **kw):
    return GenerationSpec(prompt=f"p{seed}", seed=seed, **kw)


def test_compatible_requests_share_a_group_in_arrival_order():
    specs = [spec(0), spec(1, width=256), spec(2), spec(3, num_inference_steps=2), spec(4, width=256)]
    assert group_compatible(specs) == [[0, 2], [1, 4], [3]]


def test_guidance_scale_separates_groups_but_prompts_and_seeds_do_not():
    specs = [spec(0, guidance_scale=2.0, negative_prompt="x"), spec(1), spec(2, guidance_scale=2.0)]
    assert group_compatible(specs) == [[0, 2], [1]]


def test_decoder_separates_groups():
    specs = [spec(0), spec(1, decoder="tiny"), spec(2), spec(3, decoder="tiny")]
    assert group_compatible(specs) == [[0, 2], [1, 3]]


def test_large_groups_are_split():
    specs = [spec(i) for i in range(5)]
    assert group_compatible(specs, max_group_size=2) == [[0, 1], [2, 3], [4]]


def test_negative_prompt_used_only_with_guidance():
    assert not spec(0, guidance_scale=1.0).uses_guidance
    assert spec(0, guidance_scale=1.5).uses_guidance
