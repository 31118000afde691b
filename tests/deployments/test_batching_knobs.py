"""One value per batching knob: the app's Settings defaults, per device (serve_app.settings.DEVICE_DEFAULTS).

The Serve YAML, the GPU benchmark and Terraform (all of which run the model on a GPU) either leave
a knob to the app (absent, or Terraform's default null: the environment variable is then not set)
or repeat the very same value, the CUDA default. The image sets none (the app picks the device's
default at start), nor does the CPU benchmark. A different value anywhere fails here (issue 11:
max_batch_size was 4 in Terraform, 8 in the app and the YAML, 16 in the GPU benchmark).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from serve_app.settings import DEVICE_DEFAULTS, ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
KNOBS = ("max_batch_size", "batch_wait_timeout_s")
# What the GPU deployments (Serve YAML, Terraform's SageMaker endpoint, the GPU benchmark) run with.
DEFAULTS = {knob: getattr(Settings.load(environ={}).for_device("cuda"), knob) for knob in KNOBS}
# The per-device settings: nothing but serve_app/settings.py gives them a value.
DEVICE_KNOBS = ("max_batch_size", "compile", "compile_buckets")


def same_value(text: str, default: float) -> bool:
    try:
        return float(text.strip().strip('"')) == float(default)
    except ValueError:
        return False


def tf_disagreements(text: str, where: str) -> list[str]:
    """Knob values in Terraform source that differ from the app's defaults.

    Checks variable defaults (``variable "..max_batch_size.." { default = X }``: X must be null
    or the app's value), literal arguments (``max_batch_size = 4`` in a module call or tfvars)
    and literal environment values (``SDTURBO_MAX_BATCH_SIZE = "4"``). Variable names that
    abbreviate ``batch_wait_timeout_s`` (``batch_wait...``) count as that knob.
    """
    problems = []
    for knob, default in DEFAULTS.items():
        stem = "batch_wait" if knob == "batch_wait_timeout_s" else knob
        # 1. Variable declarations: their default, up to the block's first closing brace at column 0.
        for match in re.finditer(rf'variable\s+"(\w*{stem}\w*)"\s*\{{(.*?)\n\}}', text, re.S):
            default_match = re.search(r"^\s*default\s*=\s*(\S+)", match.group(2), re.M)
            value = default_match.group(1) if default_match else "null"
            if value != "null" and not same_value(value, default):
                problems.append(f"{where}: variable {match.group(1)} defaults to {value}, the app to {default}")
        # 2. Literal values given to the knob (module arguments, tfvars) or to its environment variable.
        for name in (rf"\w*{stem}\w*", re.escape(ENV_PREFIX + knob.upper())):
            for match in re.finditer(rf'^\s*"?({name})"?\s*=\s*("?[0-9.]+"?)\s*$', text, re.M):
                if not same_value(match.group(2), default):
                    problems.append(f"{where}: {match.group(1)} = {match.group(2)}, the app's default is {default}")
    return problems


def test_the_cuda_defaults_are_the_ones_the_gpu_deployments_are_checked_against():
    assert DEFAULTS["max_batch_size"] == DEVICE_DEFAULTS["cuda"].max_batch_size
    assert Settings.load(environ={}).for_device("cuda").compile == DEVICE_DEFAULTS["cuda"].compile


def test_the_serve_yaml_leaves_the_knobs_to_the_app_or_repeats_them():
    config = yaml.safe_load((REPO / "deployments" / "serve_config.yaml").read_text())
    for app in config["applications"]:
        for knob, default in DEFAULTS.items():
            if knob in app.get("args", {}):
                assert float(app["args"][knob]) == float(default), f"{knob} in serve_config.yaml"
        if "compile" in app.get("args", {}):
            assert app["args"]["compile"] in ("auto", DEVICE_DEFAULTS["cuda"].compile), "compile in serve_config.yaml"


def test_the_image_leaves_the_per_device_settings_to_the_app():
    from tests.container.test_entrypoint import import_entrypoint

    names = [ENV_PREFIX + knob.upper() for knob in DEVICE_KNOBS]
    dockerfile = (REPO / "container" / "Dockerfile").read_text()
    set_there = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")
                 and any(name in line for name in names)]
    assert set_there == [], set_there
    assert not set(import_entrypoint().sagemaker_environment({}, REPO / "no-model-dir")) & set(names)


def test_the_cpu_benchmark_runs_the_apps_own_knobs():
    from loadtest.benchmark import build_parser

    for action in build_parser()._actions:
        assert not any(knob in action.dest for knob in DEVICE_KNOBS + KNOBS) and "batch_wait" not in action.dest


def test_the_gpu_benchmark_runs_the_apps_own_knobs():
    from loadtest.gpu_benchmark import app_settings, build_parser

    # No option of the benchmark sets a batching knob of its own...
    for action in build_parser()._actions:
        assert not any(knob in action.dest for knob in KNOBS) and "batch_wait" not in action.dest, action.dest
    # ... so the service it drives, and the ceiling it compares with, use the app's values: on CUDA
    # the CUDA defaults, on the CPU (its smoke run) the CPU's.
    assert {knob: getattr(app_settings([], "cuda"), knob) for knob in KNOBS} == DEFAULTS
    assert app_settings([], "cpu").max_batch_size == DEVICE_DEFAULTS["cpu"].max_batch_size


def test_terraform_defaults_are_null_or_the_apps_values():
    # Module and example sources and variable files; not .tftest.hcl, whose inputs are test cases.
    files = [
        f for pattern in ("*.tf", "*.tfvars") for f in sorted((REPO / "infra").rglob(pattern)) if ".terraform" not in f.parts
    ]
    assert files, "no Terraform source found under infra/"
    problems = [p for f in files for p in tf_disagreements(f.read_text(), str(f.relative_to(REPO)))]
    assert not problems, "\n".join(problems)


def test_the_terraform_check_catches_a_disagreeing_value():
    bad = f'''
variable "max_batch_size" {{
  type    = number
  default = {DEFAULTS["max_batch_size"] + 1}

  validation {{
    condition = var.max_batch_size >= 1
  }}
}}

variable "batch_wait_timeout_s" {{
  type    = number
  default = null
}}

module "endpoint" {{
  max_batch_size = 3
  container_environment = {{
    SDTURBO_BATCH_WAIT_TIMEOUT_S = "0.5"
  }}
}}
'''
    problems = tf_disagreements(bad, "example.tf")
    assert len(problems) == 3, problems
    good = bad.replace(f'default = {DEFAULTS["max_batch_size"] + 1}', "default = null")
    good = good.replace("max_batch_size = 3", f"max_batch_size = {DEFAULTS['max_batch_size']}")
    good = good.replace('"0.5"', f'"{DEFAULTS["batch_wait_timeout_s"]}"')
    assert tf_disagreements(good, "example.tf") == []
