"""The load tool's workload: a mixed-model workload's shares (``--models`` with ``--mix``)."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtest.workload import Workload, parse_model_mix


def test_a_mix_is_each_models_share_in_order():
    assert parse_model_mix(["tiny", "tiny-xl"], "3:1") == [0.75, 0.25]
    assert parse_model_mix(["tiny", "tiny-xl"], "1,1") == [0.5, 0.5]
    assert parse_model_mix(["tiny", "tiny-xl"], None) == [] and parse_model_mix([], "") == []


@pytest.mark.parametrize("models, mix, words", [
    (["tiny", "tiny-xl"], "1:1:1", "3 shares for 2 models"),
    ([], "1:1", "no --models"),
    (["tiny", "tiny-xl"], "a:b", "one number per model"),
    (["tiny", "tiny-xl"], "0:0", "not all zero"),
    (["tiny", "tiny-xl"], "-1:2", "non-negative"),
])
def test_a_mix_that_does_not_fit_the_models_is_refused_with_the_reason(models, mix, words):
    with pytest.raises(ValueError, match=words):
        parse_model_mix(models, mix)


def test_requests_name_the_models_in_their_shares():
    workload = Workload(models=["tiny", "tiny-xl"], model_weights=parse_model_mix(["tiny", "tiny-xl"], "3:1"))
    rng = random.Random(0)
    counts = Counter(workload.make(rng)["model"] for _ in range(4000))
    assert set(counts) == {"tiny", "tiny-xl"}
    assert counts["tiny"] / 4000 == pytest.approx(0.75, abs=0.03)
    # Equal shares without a mix; a model with no share is never named.
    assert set(Counter(Workload(models=["a", "b"]).make(rng)["model"] for _ in range(200))) == {"a", "b"}
    only_a = Workload(models=["a", "b"], model_weights=parse_model_mix(["a", "b"], "1:0"))
    assert {only_a.make(rng)["model"] for _ in range(200)} == {"a"}
