"""Lint and check the GitHub Actions workflows in .github/workflows/.

1. Schema: check-jsonschema's vendored GitHub-workflow schema (offline, from the
   installed wheel) must accept every workflow, and must reject a broken one.
2. Properties that matter for a safe release pipeline, asserted on the parsed YAML:
   OIDC only where needed and no long-lived AWS keys, immutable image tag = commit
   SHA, tests gate the build, the deploy job sits behind the protected environment,
   the smoke test runs after apply and can fail the run, actions are version-pinned.
3. actionlint, when an ``actionlint`` binary is on PATH (no offline wheel of the
   upstream tool exists on PyPI; see docs/ci-cd.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOW_DIR / name).read_text())
    # YAML 1.1 reads the bare key `on` as boolean True.
    if True in doc and "on" not in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def _uses(step: dict) -> str:
    return step.get("uses", "")


def _find(job: dict, pred) -> list[int]:
    return [i for i, s in enumerate(_steps(job)) if pred(s)]


def _run_text(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in _steps(job))


def _check_jsonschema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def ci() -> dict:
    return _load("ci.yml")


@pytest.fixture(scope="module")
def release() -> dict:
    return _load("release.yml")


# --------------------------------------------------------------------------- schema


def test_expected_workflows_exist():
    names = {p.name for p in WORKFLOWS}
    assert {"ci.yml", "release.yml"} <= names


def test_workflows_match_github_schema():
    proc = _check_jsonschema(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n  build:\n"
        "    runs-on: ubuntu-latest\n    stepz:\n      - run: echo hi\n"
    )
    proc = _check_jsonschema(broken)
    assert proc.returncode != 0


@pytest.mark.skipif(
    shutil.which("actionlint") is None, reason="actionlint binary not installed"
)
def test_actionlint():
    proc = subprocess.run(
        ["actionlint", "-no-color", *map(str, WORKFLOWS)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- all workflows

# A tag can be moved to other code; a commit SHA cannot. The tag stays readable in a comment.
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
_PINNED_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\s*$")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_commit_sha_with_the_tag_as_comment(path):
    doc = _load(path.name)
    for job_name, job in doc["jobs"].items():
        for step in _steps(job):
            ref = _uses(step)
            if ref and not ref.startswith("./"):
                assert _PINNED.match(ref), (
                    f"{path.name}:{job_name}: action {ref!r} is not pinned to a commit SHA"
                )
        if "uses" in job:  # reusable workflow call
            assert job["uses"].startswith("./"), (
                f"{path.name}:{job_name}: remote reusable workflow"
            )
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(?:-\s+)?uses:\s+[\w-]", line)]
    for line in lines:
        assert _PINNED_LINE.match(line), f"{path.name}: {line.strip()!r} lacks its '# vX.Y.Z' tag comment"
    # One action, one version across the file (dependabot bumps SHA and comment together).
    versions: dict[str, set] = {}
    for line in lines:
        action, sha, tag = _PINNED_LINE.match(line).groups()
        versions.setdefault(action, set()).add((sha, tag))
    assert all(len(v) == 1 for v in versions.values()), versions


def test_a_tag_pinned_action_fails_the_pin_check():
    assert not _PINNED.match("actions/checkout@v6")
    assert not _PINNED_LINE.match("      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803")
    assert _PINNED_LINE.match("      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_long_lived_aws_keys(path):
    text = path.read_text()
    for needle in (
        "aws-access-key-id",
        "aws-secret-access-key",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert needle not in text, f"{path.name} mentions {needle}"
    doc = _load(path.name)
    for job in doc["jobs"].values():
        for step in _steps(job):
            if _uses(step).startswith("aws-actions/configure-aws-credentials@"):
                role = step["with"]["role-to-assume"]
                assert role.startswith(("${{ vars.", "${{ secrets.")), role


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_id_token_write_only_where_aws_credentials_are_used(path):
    doc = _load(path.name)
    top = doc.get("permissions", {})
    assert isinstance(top, dict), "top-level permissions must be an explicit map"
    assert top.get("id-token") != "write", (
        "id-token: write must not be granted workflow-wide"
    )
    assert all(v in ("read", "none") for v in top.values()), (
        f"top-level permissions not read-only: {top}"
    )
    for name, job in doc["jobs"].items():
        uses_aws = bool(
            _find(
                job,
                lambda s: _uses(s).startswith("aws-actions/configure-aws-credentials@"),
            )
        )
        perms = job.get("permissions", {})
        if uses_aws:
            assert perms.get("id-token") == "write", (
                f"{name} assumes a role without id-token: write"
            )
        else:
            assert perms.get("id-token") != "write", (
                f"{name} has id-token: write but never uses AWS"
            )


# --------------------------------------------------------------------------- ci.yml


def test_ci_triggers_on_push_and_pull_request_and_is_callable(ci):
    triggers = ci["on"]
    assert (
        "push" in triggers
        and "pull_request" in triggers
        and "workflow_call" in triggers
    )


def test_ci_runs_the_checks(ci):
    jobs = ci["jobs"]
    everything = "\n".join(_run_text(j) for j in jobs.values())
    install = _run_text(jobs["test"])
    assert (
        "pip install --extra-index-url https://download.pytorch.org/whl/cpu -e '.[test]'"
        in install
    )
    assert re.search(r"^pytest\b", everything, re.MULTILINE)
    for cmd in (
        "ruff check",
        "hadolint container/Dockerfile",
        "check-jsonschema --builtin-schema vendor.github-workflows",
        "checkov",
        "terraform fmt -check",
        "terraform validate",
        "terraform test",
    ):
        assert cmd in everything, cmd
    setup_py = [
        s
        for j in jobs.values()
        for s in _steps(j)
        if _uses(s).startswith("actions/setup-python@")
    ]
    assert setup_py and all(
        "PYTHON_VERSION" in str(s["with"]["python-version"]) for s in setup_py
    )
    assert ci["env"]["PYTHON_VERSION"] == "3.11"


def test_ci_builds_and_runs_the_image_on_the_real_cuda_base(ci):
    """tests/container/test_image.py runs in its own job, on the Dockerfile's own CUDA base
    (the registry-free stand-in is for machines without a registry, like .ci/run's)."""
    jobs = ci["jobs"]
    image = _run_text(jobs["image"])
    assert "pytest -v tests/container/test_image.py" in image
    assert "SDTURBO_IMAGE_TEST_BASE=\"$(sed -n 's/^ARG CUDA_BASE=//p' container/Dockerfile)\"" in image
    assert "--ignore=tests/container/test_image.py" in _run_text(jobs["test"])
    assert "pip install --extra-index-url https://download.pytorch.org/whl/cpu -e '.[test]'" in image


def test_ci_test_job_runs_what_ci_run_runs(ci):
    """The GitHub test job installs what .ci/run installs, so the same tests run in both (the image
    test in its own job), and both run under CI=true, where a wholly skipped area fails the run."""
    jobs = ci["jobs"]
    test = jobs["test"]
    text = _run_text(test)
    ci_run = (REPO_ROOT / ".ci" / "run").read_text()
    # checkov: the same version, in a venv of its own, found through CHECKOV_BIN.
    assert "checkov==3.3.30" in ci_run and ci["env"]["CHECKOV_VERSION"] == "3.3.30"
    assert 'python -m venv "$RUNNER_TEMP/checkov-venv"' in text and '"checkov==${CHECKOV_VERSION}"' in text
    assert "CHECKOV_BIN=$RUNNER_TEMP/checkov-venv/bin/checkov" in text
    # Terraform and the offline provider mirror the Terraform tests need.
    assert any(_uses(s).startswith("hashicorp/setup-terraform@") for s in _steps(test))
    assert 'terraform -chdir=infra providers mirror "$RUNNER_TEMP/tf-plugins"' in text
    assert "SDTURBO_TF_PLUGIN_MIRROR=$RUNNER_TEMP/tf-plugins" in text
    # A Chromium for the browser tests (.ci/run: Debian's; the runner: its preinstalled Chrome).
    pytest_step = next(s for s in _steps(test) if s.get("name") == "pytest")
    assert "install -y -qq chromium" in ci_run
    assert pytest_step["env"]["SDTURBO_CHROMIUM"] == "/usr/bin/google-chrome"
    # Every test but the image test here; the image test, alone, in the image job.
    assert pytest_step["run"].strip() == "pytest --ignore=tests/container/test_image.py"
    assert "pytest -v tests/container/test_image.py" in _run_text(jobs["image"])
    # Both under CI=true (tests/area_guard.py), as .ci/run.
    assert pytest_step["env"]["CI"] == "true"
    image_pytest = next(s for s in _steps(jobs["image"]) if "pytest" in s.get("run", ""))
    assert image_pytest["env"]["CI"] == "true"
    # .ci/run: CI=true unless the caller set CI, then exactly the README's test command.
    assert re.search(r'^export CI="\$\{CI:-true\}"$', ci_run, re.MULTILINE)
    assert re.search(r"^\.venv/bin/python -m pytest$", ci_run, re.MULTILINE)


# --------------------------------------------------------------------------- release.yml


def test_release_runs_on_main_and_tests_gate_the_build(release):
    assert release["on"]["push"]["branches"] == ["main"]
    jobs = release["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert "ci" in _as_list(jobs["build"]["needs"])
    assert "build" in _as_list(jobs["plan"]["needs"])
    assert "plan" in _as_list(jobs["deploy"]["needs"])


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def test_release_concurrency_never_cancels_a_deploy(release):
    assert release["concurrency"]["cancel-in-progress"] is False
    deploy = release["jobs"]["deploy"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "production" in deploy["concurrency"]["group"]


def test_image_is_built_from_container_dockerfile_and_tagged_with_commit_sha(release):
    assert release["env"]["IMAGE_TAG"] == "${{ github.sha }}"
    build = release["jobs"]["build"]
    [bp] = [
        s for s in _steps(build) if _uses(s).startswith("docker/build-push-action@")
    ]
    w = bp["with"]
    assert w["file"] == "container/Dockerfile" and w["context"] == "."
    assert w["push"] is True
    assert "type=gha" in w["cache-from"] and "type=gha" in w["cache-to"]
    assert w["provenance"] is False  # SageMaker rejects OCI indexes with attestations
    # the only tag is <registry>/<repo>:<IMAGE_TAG>; no mutable 'latest'
    assert w["tags"] == "${{ steps.image.outputs.uri }}"
    image_step = next(s for s in _steps(build) if s.get("id") == "image")
    assert ':${IMAGE_TAG}"' in image_step["run"]
    assert "latest" not in str(w)
    assert _find(build, lambda s: _uses(s).startswith("aws-actions/amazon-ecr-login@"))
    assert _find(build, lambda s: _uses(s).startswith("docker/setup-buildx-action@"))


PRODUCTION_ROOT = "infra/live/production"


def test_plan_uses_the_new_image_tag(release):
    plan = release["jobs"]["plan"]
    assert plan["defaults"]["run"]["working-directory"] == PRODUCTION_ROOT
    text = _run_text(plan)
    assert '-var "image_tag=${{ github.sha }}"' in text
    assert "-out=tfplan" in text


def test_terraform_runs_in_the_production_root_not_an_example(release):
    """plan and deploy both work in infra/live/production, whose backend block is committed."""
    root = REPO_ROOT / PRODUCTION_ROOT
    assert 'backend "s3" {}' in (root / "versions.tf").read_text()
    assert 'source = "../.."' in (root / "main.tf").read_text()
    assert "examples" not in (WORKFLOW_DIR / "release.yml").read_text()
    plan, deploy = release["jobs"]["plan"], release["jobs"]["deploy"]
    # The workflow no longer generates configuration: what is planned is what is reviewed in git.
    for job in (plan, deploy):
        assert "backend.tf" not in _run_text(job)
    [upload] = [s for s in _steps(plan) if _uses(s).startswith("actions/upload-artifact@")]
    assert all(p.startswith(f"{PRODUCTION_ROOT}/") for p in upload["with"]["path"].split())
    [download] = [s for s in _steps(deploy) if _uses(s).startswith("actions/download-artifact@")]
    assert download["with"]["path"] == PRODUCTION_ROOT
    terraform_steps = [s for s in _steps(deploy) if "terraform " in s.get("run", "")]
    assert terraform_steps and all(s.get("working-directory") == PRODUCTION_ROOT for s in terraform_steps)


def test_plan_passes_only_the_production_roots_variables(release):
    """Every -var the plan passes is a variable of infra/live/production (Terraform would refuse
    the others), and the optional instance price is passed only when it is set."""
    declared = set(re.findall(r'^variable "([^"]+)"', (REPO_ROOT / PRODUCTION_ROOT / "variables.tf").read_text(), re.M))
    plan_step = next(s for s in _steps(release["jobs"]["plan"]) if "terraform plan" in s.get("run", ""))
    passed = set(re.findall(r'-var "([a-z_]+)=', plan_step["run"]))
    assert passed and passed <= declared, passed - declared
    assert {"image_tag", "region", "github_repository", "terraform_state_bucket"} <= passed
    assert 'if [ -n "${INSTANCE_PRICE_USD_PER_HOUR}" ]' in plan_step["run"]
    assert plan_step["env"]["INSTANCE_PRICE_USD_PER_HOUR"] == "${{ vars.SAGEMAKER_INSTANCE_PRICE_USD_PER_HOUR }}"
    # The deploy role's trust and OIDC provider are planned exactly as the bootstrap applied
    # them (the role cannot change them): subject format and ids, and an existing provider.
    assert {"github_subject_format", "github_repository_owner_id", "github_repository_id"} <= passed
    assert '-var "github_repository_id=${{ github.repository_id }}"' in plan_step["run"]
    assert 'if [ -n "${GITHUB_OIDC_PROVIDER_ARN}" ]' in plan_step["run"]
    assert '-var "github_oidc_provider_arn=${GITHUB_OIDC_PROVIDER_ARN}"' in plan_step["run"]


def test_the_release_build_frees_disk_before_building(release):
    build = release["jobs"]["build"]
    [free] = _find(build, lambda s: "rm -rf /usr/share/dotnet" in s.get("run", ""))
    [push] = _find(build, lambda s: _uses(s).startswith("docker/build-push-action@"))
    assert free < push


def test_the_production_roots_provider_lock_file_is_committed():
    lock = REPO_ROOT / PRODUCTION_ROOT / ".terraform.lock.hcl"
    assert lock.is_file(), "terraform init in the release jobs must check the committed provider hashes"
    text = lock.read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in text and "h1:" in text
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(lock)], cwd=REPO_ROOT, capture_output=True)
    assert tracked.returncode == 0, "the lock file must be tracked by git (not ignored)"


def test_deploy_is_gated_applies_the_plan_then_smoke_tests(release):
    deploy = release["jobs"]["deploy"]
    env = deploy["environment"]
    assert (env["name"] if isinstance(env, dict) else env) == "production"
    steps = _steps(deploy)
    [apply_i] = _find(deploy, lambda s: "terraform apply" in s.get("run", ""))
    assert "tfplan" in steps[apply_i]["run"]
    [out_i] = _find(
        deploy, lambda s: "terraform output -raw endpoint_name" in s.get("run", "")
    )
    [smoke_i] = _find(
        deploy, lambda s: "python -m deployments.smoke_test" in s.get("run", "")
    )
    assert apply_i < out_i < smoke_i
    smoke = steps[smoke_i]
    # a failed smoke test must fail the run
    assert not smoke.get("continue-on-error")
    assert "if" not in smoke
    assert "|| true" not in smoke["run"]
    assert "--endpoint-name" in smoke["run"]
    # nothing between apply and smoke test is allowed to swallow failures either
    for s in steps[apply_i : smoke_i + 1]:
        assert not s.get("continue-on-error")
