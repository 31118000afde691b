"""Helpers shared by the infra tests: run terraform offline against the local provider mirror.

Every test works on a temporary copy of infra/ with its own TF_DATA_DIR and CLI config, so the
tree never gets .terraform/, lock files or state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
PLUGIN_MIRROR = Path(os.environ.get("SDTURBO_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
AWS_PROVIDER_DIR = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"

_IGNORE = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", ".terraform.lock.hcl", "*_override.tf")


def terraform_bin() -> str:
    binary = os.environ.get("TERRAFORM_BIN") or shutil.which("terraform")
    if not binary:
        pytest.skip("terraform CLI not found (set TERRAFORM_BIN or put terraform on PATH)")
    return binary


def require_provider_mirror() -> None:
    if not AWS_PROVIDER_DIR.is_dir() or not any(AWS_PROVIDER_DIR.iterdir()):
        pytest.skip(f"no hashicorp/aws provider in the filesystem mirror {PLUGIN_MIRROR} (set SDTURBO_TF_PLUGIN_MIRROR)")


class Terraform:
    """terraform in a temporary copy of infra/, offline (filesystem mirror only)."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None):
        require_provider_mirror()
        self.bin = terraform_bin()
        self.root = workdir / "infra"
        shutil.copytree(INFRA_DIR, self.root, ignore=_IGNORE)
        cli_config = workdir / "terraform.rc"
        cli_config.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{PLUGIN_MIRROR}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
            "}\n"
        )
        self.env = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            **(extra_env or {}),
        }
        self.env.pop("TF_PLUGIN_CACHE_DIR", None)  # no shared cache: nothing written outside workdir
        self.data_dirs = workdir / "tfdata"

    def dir(self, sub: str = "") -> Path:
        return self.root / sub if sub else self.root

    def run(self, *args: str, sub: str = "", timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(self.env)
        env["TF_DATA_DIR"] = str(self.data_dirs / (sub.replace("/", "_") or "root"))
        proc = subprocess.run(
            [self.bin, *args, "-no-color"],
            cwd=self.dir(sub),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} (in {sub or 'infra'}) failed with {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return proc

    def init(self, sub: str = "", backend: bool = True) -> None:
        self.run("init", "-input=false", f"-backend={'true' if backend else 'false'}", sub=sub, timeout=180)


def console_values(workdir: Path, expressions: list[str], variables: dict[str, str] | None = None) -> list:
    """Evaluate ``expressions`` (HCL, wrapped in jsonencode) in the stack module with ``variables``.

    ``terraform console`` evaluates locals and variables offline: no provider credentials, no
    plan. What the stack would hand SageMaker (e.g. ``local.container_environment``) is read
    this way by tests that do not need a whole plan, such as the image test.
    """
    tf = Terraform(workdir)
    tf.init(backend=False)
    args = []
    for key, value in (variables or {}).items():
        args += ["-var", f"{key}={value}"]
    env = dict(tf.env)
    env["TF_DATA_DIR"] = str(tf.data_dirs / "root")
    proc = subprocess.run(
        [tf.bin, "console", "-no-color", *args],
        cwd=tf.root,
        env=env,
        # One expression: piped into console, only the last line's value is printed.
        input=f"jsonencode([{', '.join(expressions)}])\n",
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise AssertionError(f"terraform console failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    [line] = [line for line in proc.stdout.splitlines() if line.strip()]
    # An HCL string literal holding JSON; its escapes are JSON's.
    values = json.loads(json.loads(line))
    assert len(values) == len(expressions), proc.stdout
    return values


def rendered_container_environment(workdir: Path, variables: dict[str, str] | None = None) -> dict[str, str]:
    """The container environment the stack gives SageMaker's model for ``variables``."""
    [environment] = console_values(workdir, ["local.container_environment"], variables)
    return environment
