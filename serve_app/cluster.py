"""How much the Ray cluster has, and how the app's deployments are sized to fit in it.

Ray places replicas by *logical* resources: a replica that asks for more than the cluster has
left is never scheduled, and Serve waits for it forever. So the resource requests here are
derived from what the Ray head was given, and a setting that cannot fit is refused before
anything starts, with what was asked and what exists.

What has to fit: the ingress replicas and the model replicas. Serve's controller and HTTP proxy
reserve no logical CPU (``num_cpus=0`` in Ray Serve 2.60), so they always fit.

Where the numbers come from:
  * once the driver is connected to Ray (tests, a Serve config deployed to a cluster, any
    driver that called ``ray.init``): ``ray.cluster_resources()``;
  * before Ray starts (the container entrypoint, ``serve run`` which calls the builder before
    ``ray.init``): ``local_head_resources()``, Ray's own detection of this machine, which is
    exactly what a local ``ray.init()`` gives the head and what the entrypoint passes to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serve_app.settings import Settings

# The ingress parses, validates and awaits: half a CPU holds many requests.
INGRESS_CPUS = 0.5
# A model replica reserves at most one CPU (Ray then sets OMP_NUM_THREADS=1 for it, as before
# sizing existed) and at least a quarter: Ray does not cap a replica's real CPU use, so the
# floor only refuses replica counts that would time-slice the same few cores into uselessness.
MODEL_CPUS_MAX = 1.0
MODEL_CPUS_MIN = 0.25


class DoesNotFit(ValueError):
    """The settings ask for more than the Ray cluster has; the message says both."""


@dataclass(frozen=True)
class ClusterResources:
    cpus: float
    gpus: float

    @property
    def whole_gpus(self) -> int:
        # A model replica takes one whole GPU; a fractional remainder cannot hold one.
        return int(self.gpus)

    def describe(self) -> str:
        return f"{_number(self.cpus)} CPU(s) and {_number(self.gpus)} GPU(s)"


@dataclass(frozen=True)
class DeploymentSizes:
    """Replica counts and per-replica resource requests of both deployments."""

    model_replicas: int  # per served model
    model_cpus: float
    model_gpus: float  # per model replica: 1 / (served models) of a GPU, 0 on CPU
    ingress_replicas: int
    ingress_cpus: float
    models: int = 1  # served models, one deployment each

    def total_cpus(self) -> float:
        return self.models * self.model_replicas * self.model_cpus + self.ingress_replicas * self.ingress_cpus


def size_deployments(settings: Settings, resources: ClusterResources, models: int = 1) -> DeploymentSizes:
    """Fit the ingress and, for each of ``models`` served models, one model replica per GPU (or the
    asked number) into ``resources``. Every GPU holds one replica of every model (each pinned to
    that GPU with 1/models of it), so any GPU serves any model.

    Raises DoesNotFit, naming what was asked and what the cluster has, when they cannot fit.
    """
    # 1. GPU or CPU replicas: a replica pinned to a GPU takes one whole GPU.
    gpus = resources.whole_gpus
    if settings.device == "cuda" and gpus == 0:
        raise DoesNotFit(
            f"device=cuda needs one GPU per model replica; this Ray cluster has {resources.describe()}"
        )
    on_gpu = gpus > 0 and settings.device != "cpu"

    # 2. How many model replicas: 'auto' is one per GPU (one on CPU); a number must fit the GPUs.
    if settings.num_replicas == "auto":
        replicas = gpus if on_gpu else 1
    else:
        replicas = int(settings.num_replicas)
    if on_gpu and replicas > gpus:
        raise DoesNotFit(
            f"num_replicas={replicas} needs {replicas} GPUs (one per model replica); "
            f"this Ray cluster has {_number(resources.gpus)}"
        )

    # 3. CPUs: the ingress replicas first, the model replicas share what is left (at most 1 each).
    ingress_total = settings.ingress_replicas * INGRESS_CPUS
    share = (resources.cpus - ingress_total) / (replicas * models)
    model_cpus = min(MODEL_CPUS_MAX, math.floor(share * 100) / 100)  # whole hundredths, rounded down
    if model_cpus < MODEL_CPUS_MIN:
        needed = ingress_total + replicas * models * MODEL_CPUS_MIN
        raise DoesNotFit(
            f"num_replicas={replicas} model replica(s){'' if models == 1 else f' of each of {models} served models'} "
            f"need at least {MODEL_CPUS_MIN} CPU each and "
            f"ingress_replicas={settings.ingress_replicas} need {INGRESS_CPUS} CPU each: "
            f"{_number(needed)} CPUs; this Ray cluster has {_number(resources.cpus)}"
        )
    return DeploymentSizes(
        model_replicas=replicas,
        model_cpus=model_cpus,
        model_gpus=1 / models if on_gpu else 0,
        ingress_replicas=settings.ingress_replicas,
        ingress_cpus=INGRESS_CPUS,
        models=models,
    )


def local_head_resources() -> ClusterResources:
    """What a Ray head started on this machine gets: Ray's own CPU and GPU detection.

    CPUs: the container's cgroup quota when there is one, else the machine's count. GPUs: what
    NVML sees, limited by CUDA_VISIBLE_DEVICES. This is the computation ``ray.init()`` does for
    a local head (``ResourceAndLabelSpec.resolve`` in Ray 2.60), so a head sized with these
    numbers, or started by ``serve run`` without them, has exactly what the sizing assumed.
    """
    from serve_app.ray_private import local_head_cpus_and_gpus

    cpus, gpus = local_head_cpus_and_gpus()
    return ClusterResources(cpus=float(cpus), gpus=float(gpus))


def ray_cluster_resources() -> ClusterResources:
    """The connected Ray cluster's total resources (declared GPUs included)."""
    import ray

    total = ray.cluster_resources()
    return ClusterResources(cpus=float(total.get("CPU", 0.0)), gpus=float(total.get("GPU", 0.0)))


def current_resources() -> ClusterResources:
    """The connected cluster's resources, or, before Ray starts, those of the head it will start."""
    import ray

    return ray_cluster_resources() if ray.is_initialized() else local_head_resources()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
