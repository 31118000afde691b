"""Sizing the deployments to the Ray cluster: pure functions, no Ray started."""

from __future__ import annotations

import pytest

from serve_app.cluster import (
    INGRESS_CPUS,
    MODEL_CPUS_MIN,
    ClusterResources,
    DoesNotFit,
    local_head_resources,
    size_deployments,
)
from serve_app.settings import Settings


def settings(**overrides) -> Settings:
    return Settings.load({key: str(value) for key, value in overrides.items()}, environ={})


def test_auto_gives_one_model_replica_per_gpu_each_pinned_to_one_gpu():
    sizes = size_deployments(settings(), ClusterResources(cpus=16, gpus=8))
    assert (sizes.model_replicas, sizes.model_gpus, sizes.model_cpus) == (8, 1, 1.0)
    assert sizes.ingress_replicas == 1 and sizes.ingress_cpus == INGRESS_CPUS


def test_auto_on_a_cpu_only_cluster_gives_one_cpu_replica():
    sizes = size_deployments(settings(), ClusterResources(cpus=2, gpus=0))
    assert (sizes.model_replicas, sizes.model_gpus, sizes.model_cpus) == (1, 0, 1.0)


def test_device_cpu_ignores_the_gpus():
    sizes = size_deployments(settings(device="cpu"), ClusterResources(cpus=8, gpus=4))
    assert (sizes.model_replicas, sizes.model_gpus) == (1, 0)


def test_two_replicas_on_two_cpus_share_what_the_ingress_leaves():
    # The case: 2 x 1 CPU + 0.5 for the ingress did not fit on 2 CPUs; now they share.
    sizes = size_deployments(settings(num_replicas=2), ClusterResources(cpus=2, gpus=0))
    assert sizes.model_replicas == 2 and sizes.model_cpus == 0.75
    assert sizes.total_cpus() <= 2


def test_one_cpu_container_still_fits_ingress_and_model():
    sizes = size_deployments(settings(), ClusterResources(cpus=1, gpus=0))
    assert sizes.model_cpus == 0.5 and sizes.total_cpus() == 1.0


def test_more_gpus_than_cpus_gives_fractional_cpus_that_fit():
    sizes = size_deployments(settings(), ClusterResources(cpus=4, gpus=8))
    assert sizes.model_replicas == 8 and sizes.model_cpus == 0.43  # 3.5 / 8, rounded down
    assert sizes.total_cpus() <= 4


@pytest.mark.parametrize(
    "overrides, resources, message",
    [
        ({"num_replicas": 3}, ClusterResources(cpus=8, gpus=2),
         "num_replicas=3 needs 3 GPUs (one per model replica); this Ray cluster has 2"),
        ({"device": "cuda"}, ClusterResources(cpus=8, gpus=0),
         "device=cuda needs one GPU per model replica; this Ray cluster has 8 CPU(s) and 0 GPU(s)"),
        ({"num_replicas": 7}, ClusterResources(cpus=2, gpus=0),
         "num_replicas=7 model replica(s) need at least 0.25 CPU each and ingress_replicas=1 need 0.5 CPU "
         "each: 2.25 CPUs; this Ray cluster has 2"),
        ({"ingress_replicas": 4, "direct_ingress": False}, ClusterResources(cpus=2, gpus=0),
         "ingress_replicas=4 need 0.5 CPU each: 2.25 CPUs; this Ray cluster has 2"),
        ({"num_replicas": 2}, ClusterResources(cpus=2, gpus=1.5),
         "num_replicas=2 needs 2 GPUs (one per model replica); this Ray cluster has 1.5"),
    ],
)
def test_what_cannot_fit_is_refused_with_what_was_asked_and_what_exists(overrides, resources, message):
    with pytest.raises(DoesNotFit) as refused:
        size_deployments(settings(**overrides), resources)
    assert message in str(refused.value)


def test_the_largest_cpu_replica_count_that_fits_is_accepted():
    # (2 - 0.5) / 0.25 = 6 replicas at the floor: still fits.
    sizes = size_deployments(settings(num_replicas=6), ClusterResources(cpus=2, gpus=0))
    assert sizes.model_cpus == MODEL_CPUS_MIN and sizes.total_cpus() == 2


def test_local_head_resources_counts_the_gpus_this_process_may_use(monkeypatch):
    # What ray.init() would give a local head: NVML's count, limited by CUDA_VISIBLE_DEVICES.
    from ray._private.accelerators import NvidiaGPUAcceleratorManager
    from ray._private.utils import get_num_cpus

    monkeypatch.setattr(NvidiaGPUAcceleratorManager, "get_current_node_num_accelerators", staticmethod(lambda: 4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert local_head_resources() == ClusterResources(cpus=get_num_cpus(), gpus=2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert local_head_resources().gpus == 4


def test_several_models_share_every_gpu_and_the_cpus():
    settings = Settings.load({}, environ={})
    sizes = size_deployments(settings, ClusterResources(cpus=16, gpus=2), models=2)
    # One replica of each model on every GPU: half a GPU each, so any GPU serves any model.
    assert (sizes.model_replicas, sizes.model_gpus, sizes.models) == (2, 0.5, 2)
    assert sizes.total_cpus() <= 16
    cpu = size_deployments(settings, ClusterResources(cpus=2, gpus=0), models=2)
    assert (cpu.model_replicas, cpu.model_gpus, cpu.model_cpus) == (1, 0, 0.75)
    with pytest.raises(DoesNotFit, match="of each of 4 served models"):
        size_deployments(Settings.load({"num_replicas": "2"}, environ={}), ClusterResources(cpus=2, gpus=0), models=4)
