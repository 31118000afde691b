"""Static checks of infra/: fmt, offline init, validate, terraform test (mocked provider), checkov,
and the layout rules (one concern per module, thin examples, a production root).

All terraform commands run in a temporary copy of infra/ with a CLI config that only allows the
filesystem provider mirror, so they prove the configuration installs without a registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from .tfhelpers import INFRA_DIR, Terraform

# Every root configuration: the stack module itself, the two examples, the production root.
ROOTS = ["", "examples/realtime", "examples/async", "live/production"]
ROOT_IDS = ["stack", "example-realtime", "example-async", "production"]
MODULES = sorted(p.name for p in (INFRA_DIR / "modules").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def tf(tmp_path_factory) -> Terraform:
    tf = Terraform(tmp_path_factory.mktemp("tf-static"))
    for sub in ROOTS:
        tf.init(sub, backend=False)
    return tf


@pytest.mark.timeout(120)
def test_fmt_check(tf):
    proc = tf.run("fmt", "-check", "-recursive", "-diff", check=False)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sub", ROOTS, ids=ROOT_IDS)
def test_init_offline_and_validate(tf, sub):
    lock = (tf.dir(sub) / ".terraform.lock.hcl").read_text()
    # The provider came from the mirror, pinned to the 5.x series.
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock
    assert re.search(r'version\s+=\s+"5\.\d+\.\d+"', lock), lock
    assert 'constraints = "~> 5.0"' in lock
    out = json.loads(tf.run("validate", "-json", sub=sub).stdout)
    assert out["valid"] is True and out["error_count"] == 0, out


@pytest.mark.timeout(600)
def test_terraform_native_tests_with_mocked_provider(tf):
    proc = tf.run("test", timeout=560, check=False)
    assert proc.returncode == 0, f"terraform test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    summary = re.search(r"(\d+) passed, (\d+) failed", proc.stdout)
    assert summary, proc.stdout
    passed, failed = map(int, summary.groups())
    assert failed == 0 and passed >= 30, proc.stdout
    # Every module has its own test runs, plus the stack's.
    for name in ("stack", "endpoint", "monitoring", "autoscaling", "storage", "github_oidc"):
        assert f"tests/{name}.tftest.hcl... pass" in proc.stdout, name


def _blocks(text: str, kind: str) -> dict[str, str]:
    parts = re.split(rf'^{kind} "([^"]+)" {{', text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n}\n", 1)[0] for i in range(1, len(parts), 2)}


def _variables(directory) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.tf")):
        found.update(_blocks(path.read_text(), "variable"))
    return found


@pytest.mark.parametrize("sub", ROOTS + [f"modules/{m}" for m in MODULES])
def test_every_variable_is_typed_and_described(sub):
    variables = _variables(INFRA_DIR / sub)
    assert variables, sub
    for name, body in variables.items():
        assert re.search(r"^\s+type\s+=", body, re.M), f"{sub}: variable {name} has no type"
        assert re.search(r'^\s+description\s+=\s+"\S', body, re.M), f"{sub}: variable {name} has no description"


@pytest.mark.parametrize("module", MODULES)
def test_each_module_is_one_concern_with_the_standard_files(module):
    files = {p.name for p in (INFRA_DIR / "modules" / module).glob("*.tf")}
    assert {"variables.tf", "outputs.tf", "versions.tf"} <= files, files
    outputs = _blocks((INFRA_DIR / "modules" / module / "outputs.tf").read_text(), "output")
    assert outputs and all("description" in body for body in outputs.values())
    # A module is called by the stack, never a copy of another.
    assert f'source = "./modules/{module}"' in (INFRA_DIR / "main.tf").read_text()


@pytest.mark.parametrize("example", ["realtime", "async"])
def test_examples_are_thin_calls_of_the_stack(example):
    directory = INFRA_DIR / "examples" / example
    main = (directory / "main.tf").read_text()
    assert 'source = "../.."' in main
    assert len(_variables(directory)) <= 2, "an example sets values; it does not re-declare the stack's inputs"
    assert len(main.splitlines()) < 40


def test_production_root_is_what_the_release_workflow_deploys():
    directory = INFRA_DIR / "live" / "production"
    assert re.search(r'backend "s3" \{\}', (directory / "versions.tf").read_text())
    assert 'source = "../.."' in (directory / "main.tf").read_text()
    outputs = _blocks((directory / "outputs.tf").read_text(), "output")
    assert {"endpoint_name", "github_actions_role_arn", "ecr_repository_url", "dashboard_url"} <= set(outputs)
    release = (INFRA_DIR.parent / ".github" / "workflows" / "release.yml").read_text()
    assert "working-directory: infra/live/production" in release
    assert "infra/examples" not in release


def test_outputs_a_user_needs():
    outputs = _blocks((INFRA_DIR / "outputs.tf").read_text(), "output")
    for name in (
        "endpoint_name", "ecr_repository_url", "bucket_name", "invoke_endpoint_command", "github_actions_role_arn",
        "dashboard_url", "alarm_thresholds", "gpus_per_instance", "container_environment",
    ):  # fmt: skip
        assert name in outputs, name
        assert "description" in outputs[name]
    for example in ("realtime", "async"):
        ex = _blocks((INFRA_DIR / "examples" / example / "outputs.tf").read_text(), "output")
        assert {"invoke_endpoint_command", "sd_turbo"} <= set(ex)


def _checkov_bin() -> str | None:
    return os.environ.get("CHECKOV_BIN") or shutil.which("checkov")


@pytest.mark.timeout(300)
def test_checkov_passes_or_skips_are_justified(tmp_path):
    checkov = _checkov_bin()
    if not checkov:
        pytest.skip("checkov not installed: set CHECKOV_BIN or put checkov on PATH (pip install checkov==3.3.30 in a separate venv)")
    proc = subprocess.run(
        [checkov, "-d", str(INFRA_DIR), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        cwd=tmp_path,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r["results"].get("failed_checks", [])]
    assert not failed, "checkov failures:\n" + "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}" for c in failed)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sum(r["summary"]["parsing_errors"] for r in reports) == 0
    assert sum(r["summary"]["passed"] for r in reports) > 50
    for r in reports:
        for skipped in r["results"].get("skipped_checks", []):
            reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason) > 40, f"{skipped['check_id']} on {skipped['resource']} skipped without a real justification"
