"""Static checks of the image definition (test_image.py builds and runs it)."""

import re
import subprocess
import sys
from pathlib import Path

from serve_app.settings import SAGEMAKER_PORT

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "container" / "Dockerfile"
LOCK = REPO / "container" / "requirements.lock"


def test_hadolint_is_clean():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_pinned_and_runs_the_entrypoint_with_serve():
    text = DOCKERFILE.read_text()
    # The base by tag and digest: the tag says what it is, the digest fixes the bytes.
    assert re.search(r"^ARG CUDA_BASE=nvidia/cuda:\d+\.\d+\.\d+-base-ubuntu\d+\.\d+@sha256:[0-9a-f]{64}$", text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) >= 3
    assert "--require-hashes" in text
    assert 'CMD ["serve"]' in text and f"EXPOSE {SAGEMAKER_PORT}\n" in text
    # The health check asks the same port (the Dockerfile cannot import the settings: tied here).
    assert f"http://127.0.0.1:{SAGEMAKER_PORT}/ping" in text
    ports = re.findall(r"(?:EXPOSE |127\.0\.0\.1:|-p |-p \d+:)(\d{4,5})\b", text)
    assert len(ports) >= 3 and set(ports) == {str(SAGEMAKER_PORT)}, ports
    assert re.search(r"^USER \d+$", text, re.M), "runs as a non-root numeric user"


def test_lock_pins_every_requirement_with_hashes_and_matches_pyproject_torch():
    lock = LOCK.read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\]+)", lock, re.M)
    assert len(pins) > 50
    assert lock.count("--hash=sha256:") >= len(pins)
    versions = dict(pins)
    pyproject = (REPO / "pyproject.toml").read_text()
    for name in ("torch", "diffusers", "transformers", "accelerate", "swagger-ui-bundle-v2"):
        assert f'"{name}=={versions[name]}"' in pyproject, name
    assert f'"ray[serve]=={versions["ray"]}"' in pyproject


def test_dockerignore_keeps_the_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "**"  # allow-list: nothing travels unless named
    for needed in ("!serve_app/**", "!container/*.py", "!container/requirements.lock"):
        assert needed in ignore
