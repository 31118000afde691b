"""Static checks of infra/: fmt, offline init, validate, terraform test (mocked provider), checkov.

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

ROOTS = ["", "examples/realtime", "examples/async"]


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
@pytest.mark.parametrize("sub", ROOTS, ids=["module", "realtime", "async"])
def test_init_offline_and_validate(tf, sub):
    lock = (tf.dir(sub) / ".terraform.lock.hcl").read_text()
    # The provider came from the mirror, pinned to the 5.x series.
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock
    assert re.search(r'version\s+=\s+"5\.\d+\.\d+"', lock), lock
    assert 'constraints = "~> 5.0"' in lock
    out = json.loads(tf.run("validate", "-json", sub=sub).stdout)
    assert out["valid"] is True and out["error_count"] == 0, out


@pytest.mark.timeout(240)
def test_terraform_native_tests_with_mocked_provider(tf):
    proc = tf.run("test", timeout=200, check=False)
    assert proc.returncode == 0, f"terraform test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    summary = re.search(r"(\d+) passed, (\d+) failed", proc.stdout)
    assert summary, proc.stdout
    passed, failed = map(int, summary.groups())
    assert failed == 0 and passed >= 10, proc.stdout


def _blocks(text: str, kind: str) -> dict[str, str]:
    parts = re.split(rf'^{kind} "([^"]+)" {{', text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n}\n", 1)[0] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("sub", ROOTS, ids=["module", "realtime", "async"])
def test_every_variable_is_typed_and_described(sub):
    variables = _blocks((INFRA_DIR / sub / "variables.tf").read_text(), "variable")
    assert variables
    for name, body in variables.items():
        assert re.search(r"^\s+type\s+=", body, re.M), f"variable {name} has no type"
        assert re.search(r'^\s+description\s+=\s+"\S', body, re.M), f"variable {name} has no description"


def test_outputs_a_user_needs():
    outputs = _blocks((INFRA_DIR / "outputs.tf").read_text(), "output")
    for name in ("endpoint_name", "ecr_repository_url", "bucket_name", "invoke_endpoint_command", "github_actions_role_arn"):
        assert name in outputs, name
        assert "description" in outputs[name]
    for example in ("realtime", "async"):
        ex = _blocks((INFRA_DIR / "examples" / example / "outputs.tf").read_text(), "output")
        assert {"endpoint_name", "ecr_repository_url", "bucket_name", "invoke_endpoint_command", "github_actions_role_arn"} <= set(ex)


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
