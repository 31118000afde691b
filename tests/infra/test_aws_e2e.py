"""Opt-in end-to-end test against a real AWS account: apply, invoke, destroy.

Runs only when all of these hold, and skips with the reason otherwise:
  * SDTURBO_AWS_E2E=1                         explicit opt-in (it costs money: a GPU instance for ~20 min)
  * AWS credentials resolvable by boto3       (env, profile, SSO, or OIDC in CI)
  * SDTURBO_AWS_E2E_IMAGE_URI                 an already pushed serving image (ECR URI; the execution
                                              role gets pull access to that repository)
Optional:
  * SDTURBO_AWS_E2E_MODE          realtime (default) | async
  * SDTURBO_AWS_E2E_REGION        default: AWS_REGION / AWS_DEFAULT_REGION / us-east-1
  * SDTURBO_AWS_E2E_INSTANCE_TYPE default ml.g5.xlarge
  * SDTURBO_AWS_E2E_MODEL         SDTURBO_MODEL for the container (default stabilityai/sd-turbo)
  * SDTURBO_AWS_E2E_NAME          stack name (default sdt-e2e-<random>; must not collide)

The stack is always destroyed, also when an assertion fails.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid

import pytest

from .tfhelpers import Terraform

pytestmark = pytest.mark.aws


def _settings() -> dict[str, str]:
    if os.environ.get("SDTURBO_AWS_E2E") != "1":
        pytest.skip("real-AWS test is opt-in: set SDTURBO_AWS_E2E=1 (plus credentials and SDTURBO_AWS_E2E_IMAGE_URI)")
    boto3 = pytest.importorskip("boto3")
    region = os.environ.get("SDTURBO_AWS_E2E_REGION") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if boto3.Session(region_name=region).get_credentials() is None:
        pytest.skip("SDTURBO_AWS_E2E=1 but no AWS credentials are available to boto3")
    image = os.environ.get("SDTURBO_AWS_E2E_IMAGE_URI")
    if not image:
        pytest.skip("SDTURBO_AWS_E2E=1 but SDTURBO_AWS_E2E_IMAGE_URI (a pushed serving image) is not set")
    mode = os.environ.get("SDTURBO_AWS_E2E_MODE", "realtime")
    if mode not in ("realtime", "async"):
        pytest.fail(f"SDTURBO_AWS_E2E_MODE must be realtime or async, not {mode!r}")
    return {
        "region": region,
        "image_uri": image,
        "mode": mode,
        "instance_type": os.environ.get("SDTURBO_AWS_E2E_INSTANCE_TYPE", "ml.g5.xlarge"),
        "model_id": os.environ.get("SDTURBO_AWS_E2E_MODEL", "stabilityai/sd-turbo"),
        "name": os.environ.get("SDTURBO_AWS_E2E_NAME", f"sdt-e2e-{uuid.uuid4().hex[:8]}"),
    }


def _invoke_realtime(boto3, cfg: dict, endpoint: str) -> dict:
    runtime = boto3.client("sagemaker-runtime", region_name=cfg["region"])
    body = {"prompt": "a lighthouse at dusk, oil painting", "seed": 7, "num_inference_steps": 1, "width": 512, "height": 512}
    resp = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Accept="application/json", Body=json.dumps(body)
    )
    return json.loads(resp["Body"].read())


def _invoke_async(boto3, cfg: dict, endpoint: str, bucket: str) -> dict:
    s3 = boto3.client("s3", region_name=cfg["region"])
    runtime = boto3.client("sagemaker-runtime", region_name=cfg["region"])
    key = f"async-inputs/e2e-{uuid.uuid4().hex}.json"
    body = {"prompt": "a lighthouse at dusk, oil painting", "seed": 7, "num_inference_steps": 1}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")
    resp = runtime.invoke_endpoint_async(
        EndpointName=endpoint, ContentType="application/json", InputLocation=f"s3://{bucket}/{key}"
    )
    out_bucket, out_key = resp["OutputLocation"].removeprefix("s3://").split("/", 1)
    deadline = time.monotonic() + 1200  # the endpoint may have to scale 0 -> 1 first
    while time.monotonic() < deadline:
        try:
            return json.loads(s3.get_object(Bucket=out_bucket, Key=out_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(15)
    pytest.fail(f"no async output at {resp['OutputLocation']} after 20 minutes (failures go to async-failures/)")


@pytest.mark.timeout(5400)
def test_apply_invoke_destroy_on_real_aws(tmp_path):
    cfg = _settings()
    import boto3

    tf = Terraform(tmp_path, extra_env={"AWS_REGION": cfg["region"]})
    sub = f"examples/{cfg['mode']}"
    # The example's module call with this run's values (Terraform override file; the example
    # itself stays as committed). The provider takes the region from AWS_REGION.
    module_args = {
        "name": cfg["name"],
        "image_uri": cfg["image_uri"],
        "instance_type": cfg["instance_type"],
        "model_id": cfg["model_id"],
        "create_endpoint": True,
        "ecr_force_delete": True,
        "bucket_force_destroy": True,
    }
    (tf.dir(sub) / "e2e_override.tf").write_text(
        'module "sd_turbo" {\n' + "".join(f"  {k} = {json.dumps(v)}\n" for k, v in module_args.items()) + "}\n"
    )
    tf.init(sub)
    try:
        tf.run("apply", "-auto-approve", "-input=false", sub=sub, timeout=3600)
        outputs = {k: v["value"] for k, v in json.loads(tf.run("output", "-json", sub=sub).stdout).items()}
        stack = outputs["sd_turbo"]
        endpoint = stack["endpoint_name"]
        sm = boto3.client("sagemaker", region_name=cfg["region"])
        assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
        if cfg["mode"] == "realtime":
            result = _invoke_realtime(boto3, cfg, endpoint)
        else:
            result = _invoke_async(boto3, cfg, endpoint, stack["bucket_name"])
        image = base64.b64decode(result["image"])
        assert image[:2] == b"\xff\xd8", "default output format is JPEG"
        assert result["seed"] == 7 and result["width"] == 512 and result["height"] == 512
    finally:
        tf.run("destroy", "-auto-approve", "-input=false", sub=sub, timeout=3600)
