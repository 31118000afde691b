"""terraform apply / update / destroy against a moto server on loopback.

Two configurations are applied for real through the AWS provider, read back with boto3, then
destroyed; each test asserts nothing is left and that the server never answered 5xx /
NotImplemented (see moto_scaffolding.py for the gaps we fill):

* infra/live/production, the root the release workflow deploys (real-time endpoint, GitHub
  deploy role, dashboard), including a rollout of a new image tag;
* infra/examples/async (async endpoint, bucket, topics, scale to zero), here with weights from
  S3 (model_data_url) in the stack's private VPC of two zones with network isolation.

The production root is applied the way a fresh account gets it: first the bootstrap an
administrator runs (create_endpoint = false), then the release and a rollout. Every AWS call
Terraform makes in those two is recorded and evaluated against the deploy role's policy, as IAM
stores it (tests/infra/iam_permissions.py): moto itself checks no permissions.

Test-only settings, written into an override file (Terraform's *_override.tf mechanism: the
committed configuration stays as it is, the file only replaces the named arguments):
* the provider points at moto; the production root's S3 backend becomes local state;
* instance types from moto 5.2's list, which lacks ml.g5: ml.g4dn.12xlarge (4 GPUs, so the GPU
  alarms and dashboard are checked at 4 x 100 %) for production, ml.g4dn.xlarge for async;
* the stack name sdt-moto, and force_destroy / force_delete so destroy can remove the bucket
  and the repository.
"""

from __future__ import annotations

import json

import pytest

from .tfhelpers import Terraform

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from .iam_permissions import Context, denied  # noqa: E402
from .iam_policy import without_action  # noqa: E402
from .moto_scaffolding import AwsCall, MotoServer  # noqa: E402
from .sagemaker_metrics import unpublished  # noqa: E402

# Terraform against a moto server on loopback: a long file that mostly waits on the provider polling
# moto (tests/run_order.py).
pytestmark = [pytest.mark.integration, pytest.mark.mostly_waiting]

REGION = "us-east-1"
NAME = "sdt-moto"
IMAGE_TAG = "0123456789abcdef"
SERVICES = [
    "applicationautoscaling",
    "cloudwatch",
    "cloudwatchlogs",
    "ec2",
    "ecr",
    "iam",
    "kms",
    "s3",
    "sagemaker",
    "sns",
    "sts",
]
MODEL_DATA_URL = "s3://sdt-moto-models/sd-turbo/model.tar.gz"
PRODUCTION = "live/production"
ASYNC_EXAMPLE = "examples/async"
# What the test changes in each configuration's call of the stack module.
MODULE_OVERRIDES = {
    PRODUCTION: {"name": NAME, "instance_type": "ml.g4dn.12xlarge", "max_capacity": 3, "ecr_force_delete": True},
    ASYNC_EXAMPLE: {
        "name": NAME, "instance_type": "ml.g4dn.xlarge", "max_capacity": 3,
        "ecr_force_delete": True, "bucket_force_destroy": True,
        "model_data_url": MODEL_DATA_URL, "create_vpc": True,
    },
}  # fmt: skip
PRODUCTION_VARS = {
    "region": REGION,
    "image_tag": IMAGE_TAG,
    "github_repository": "acme/sd-turbo-serve",
    "terraform_state_bucket": "acme-tf-state",
    "instance_price_usd_per_hour": "7.5",  # any positive figure: the test checks the formula
}


def _hcl(value) -> str:
    return json.dumps(value)  # strings, numbers and booleans read the same in HCL


def _override(url: str, sub: str) -> str:
    endpoints = "\n".join(f'    {svc} = "{url}"' for svc in SERVICES)
    module_args = "\n".join(f"  {key} = {_hcl(value)}" for key, value in MODULE_OVERRIDES[sub].items())
    backend = 'terraform {\n  backend "local" {}\n}\n\n' if sub == PRODUCTION else ""
    return f"""# Written by tests/infra/test_terraform_moto.py: moto on loopback, local state, test-only values.
{backend}provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true
  max_retries                 = 2
  endpoints {{
{endpoints}
  }}
}}

module "sd_turbo" {{
{module_args}
}}
"""


def _client(server: MotoServer, service: str):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _tf_vars(values: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += ["-var", f"{key}={value}"]
    return out


def _apply_read_destroy(
    tmp_path, sub: str, tf_vars: dict[str, str], check, rollout: bool = False, deploy_role_calls=None
) -> None:
    """Apply, read back, (roll out,) destroy.

    With ``deploy_role_calls`` (the production root): first the bootstrap apply an administrator
    runs (create_endpoint = false, no image yet), then every call of the release apply, the plan
    after it and the rollout (what the deploy role does) goes to ``deploy_role_calls(server, calls)``.
    """
    with MotoServer() as server:
        tf = Terraform(tmp_path)
        (tf.dir(sub) / "moto_override.tf").write_text(_override(server.url, sub))
        tf.init(sub)
        args = _tf_vars(tf_vars)
        try:
            if deploy_role_calls is not None:
                bootstrap = {k: v for k, v in tf_vars.items() if k != "image_tag"}
                tf.run("apply", "-auto-approve", "-input=false", *_tf_vars(bootstrap), "-var", "create_endpoint=false",
                       sub=sub, timeout=420)
            release_started = server.mark()
            tf.run("apply", "-auto-approve", "-input=false", *args, sub=sub, timeout=420)
            outputs = json.loads(tf.run("output", "-json", sub=sub).stdout)
            state = json.loads(tf.run("show", "-json", sub=sub).stdout)
            # A second plan must be empty: what was applied reads back identically.
            plan = tf.run("plan", "-input=false", "-detailed-exitcode", *args, sub=sub, check=False, timeout=300)
            assert plan.returncode == 0, f"plan after apply is not empty:\n{plan.stdout[-4000:]}\n{plan.stderr[-2000:]}"
            check(server, {k: v["value"] for k, v in outputs.items()}, state)
            if rollout:
                _check_rollout(server, tf, sub, tf_vars)
            if deploy_role_calls is not None:
                deploy_role_calls(server, server.calls_since(release_started))
        finally:
            tf.run("destroy", "-auto-approve", "-input=false", *args, sub=sub, timeout=420)
        _assert_nothing_left(server, vpc="create_vpc" in MODULE_OVERRIDES[sub])
        assert server.errors() == [], "moto answered 5xx / NotImplemented:\n" + "\n".join(server.errors())


def _check_rollout(server: MotoServer, tf: Terraform, sub: str, tf_vars: dict[str, str]) -> None:
    """A new image tag (what the deploy workflow passes) updates the endpoint in place.

    New model and endpoint configuration are created first (create_before_destroy), the endpoint
    is *updated* to the new configuration (UpdateEndpoint with the blue/green canary
    DeploymentConfig), then the old configuration and model are deleted. The endpoint is never
    replaced (a replacement would mean downtime and no canary).
    """
    sm = _client(server, "sagemaker")
    before = sm.describe_endpoint(EndpointName=NAME)
    new_tag = "fedcba9876543210"
    args = _tf_vars({**tf_vars, "image_tag": new_tag})
    tf.run("plan", "-input=false", "-out=rollout.tfplan", *args, sub=sub, timeout=300)
    plan = json.loads(tf.run("show", "-json", "rollout.tfplan", sub=sub).stdout)
    actions = {rc["address"]: rc["change"]["actions"] for rc in plan["resource_changes"] if rc["change"]["actions"] != ["no-op"]}
    endpoint = "module.sd_turbo.module.endpoint[0]"
    monitoring = "module.sd_turbo.module.monitoring[0]"
    assert actions == {
        f"{endpoint}.aws_sagemaker_model.this": ["create", "delete"],
        f"{endpoint}.aws_sagemaker_endpoint_configuration.this": ["create", "delete"],
        # The rollback alarms move to the new configuration's fleet before the update starts.
        f'{monitoring}.aws_cloudwatch_metric_alarm.this["new-fleet-5xx-rate"]': ["update"],
        f'{monitoring}.aws_cloudwatch_metric_alarm.this["new-fleet-latency-p90"]': ["update"],
        f"{endpoint}.aws_sagemaker_endpoint.this": ["update"],
    }, actions
    tf.run("apply", "-auto-approve", "-input=false", "rollout.tfplan", sub=sub, timeout=420)
    after = sm.describe_endpoint(EndpointName=NAME)
    assert after["EndpointArn"] == before["EndpointArn"]
    assert after["EndpointConfigName"] != before["EndpointConfigName"]
    assert after["EndpointStatus"] == "InService"
    assert after["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert configs == [after["EndpointConfigName"]]
    alarm = _alarms(server)[f"{NAME}-new-fleet-latency-p90"]
    assert _dims(alarm)["EndpointConfigName"] == after["EndpointConfigName"]
    # Capacity: the new fleet starts at max_capacity, not at a reset count.
    [variant] = sm.describe_endpoint_config(EndpointConfigName=after["EndpointConfigName"])["ProductionVariants"]
    assert variant["InitialInstanceCount"] == MODULE_OVERRIDES[sub]["max_capacity"]
    [model] = sm.list_models()["Models"]
    image = sm.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]["Image"]
    assert image.endswith(f":{new_tag}")


def _check_deploy_role_allows(server: MotoServer, calls: list[AwsCall]) -> None:
    """Every call Terraform made in the release and the rollout is allowed by the deploy role.

    moto checks no permissions, so each recorded call is evaluated here: its own action on the
    ARNs built from its parameters, plus what AWS checks behind it (tests/infra/iam_permissions.py),
    against the deploy role's policy as IAM stores it after the bootstrap.
    """
    terraform_calls = [c for c in calls if c.by_terraform]
    services = {c.service for c in terraform_calls}
    assert {"sagemaker", "application-autoscaling", "cloudwatch", "iam"} <= services, services
    role = f"{NAME}-github-actions-deploy"
    document = _client(server, "iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    policy = json.loads(document) if isinstance(document, str) else document
    account = _client(server, "sts").get_caller_identity()["Account"]

    problems = denied(policy, terraform_calls, Context(account=account, region=REGION))
    assert problems == [], "the deploy role would be refused:\n" + "\n".join(problems)

    # The test of the test: without one permission AWS checks behind RegisterScalableTarget, the
    # same calls must fail, naming it.
    weaker = without_action(policy, "sagemaker:UpdateEndpointWeightsAndCapacities")
    problems = denied(weaker, terraform_calls, Context(account=account, region=REGION))
    assert any("RegisterScalableTarget needs sagemaker:UpdateEndpointWeightsAndCapacities" in p for p in problems), problems


def _resources(state: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}

    def walk(module: dict) -> None:
        for res in module.get("resources", []):
            found[res["address"]] = res["values"]
        for child in module.get("child_modules", []):
            walk(child)

    walk(state["values"]["root_module"])
    return found


def _assert_nothing_left(server: MotoServer, vpc: bool = False) -> None:
    sm = _client(server, "sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    aas = _client(server, "application-autoscaling")
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert _client(server, "cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert _client(server, "cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert _client(server, "sns").list_topics()["Topics"] == []
    assert _client(server, "ecr").describe_repositories()["repositories"] == []
    assert _client(server, "s3").list_buckets()["Buckets"] == []
    roles = [r["RoleName"] for r in _client(server, "iam").list_roles()["Roles"] if r["RoleName"].startswith(NAME)]
    assert roles == []
    assert _client(server, "iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert _client(server, "logs").describe_log_groups()["logGroups"] == []
    if vpc:
        assert _client(server, "ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"] == []
    keys = _client(server, "kms").list_keys()["Keys"]
    states = [_client(server, "kms").describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in keys]
    assert all(s == "PendingDeletion" for s in states), states


def _alarms(server: MotoServer) -> dict[str, dict]:
    return {a["AlarmName"]: a for a in _client(server, "cloudwatch").describe_alarms()["MetricAlarms"]}


def _dims(alarm: dict) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def _dashboard(server: MotoServer) -> list[dict]:
    body = _client(server, "cloudwatch").get_dashboard(DashboardName=NAME)["DashboardBody"]
    return json.loads(body)["widgets"]


def _widget(widgets: list[dict], title_start: str) -> dict:
    [found] = [w for w in widgets if w["properties"].get("title", "").startswith(title_start)]
    return found["properties"]


def _check_common(server: MotoServer, state: dict, *, instance_type: str, gpus: int, environment: dict,
                  instances: int, endpoint_type: str) -> dict:
    """What both stacks share: endpoint, model, ECR, execution role, canary, alarms, logs, scaling."""
    sm = _client(server, "sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=NAME)
    assert endpoint["EndpointStatus"] == "InService"

    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == instance_type
    # Autoscaling on: every configuration starts at max_capacity, so a release keeps capacity.
    assert variant["InitialInstanceCount"] == instances
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 900
    # The newest host AMI AWS provider 5.100 accepts (NVIDIA driver 550).
    assert variant["InferenceAmiVersion"] == "al2-ami-sagemaker-inference-gpu-3-1"
    # g4dn has local NVMe storage: SageMaker rejects a volume KMS key there, so none is set.
    assert not config.get("KmsKeyId")

    model = sm.describe_model(ModelName=variant["ModelName"])
    repo = _client(server, "ecr").describe_repositories(repositoryNames=[NAME])["repositories"][0]
    assert model["PrimaryContainer"]["Image"] == f"{repo['repositoryUri']}:{IMAGE_TAG}"
    # The app's settings; batching knobs are absent, so the app's own defaults apply.
    assert model["PrimaryContainer"]["Environment"] == {
        **environment,
        "SDTURBO_PORT": "8080",
        "SDTURBO_STARTUP_DEADLINE_S": "840",  # SageMaker's 900 s start-up health check - 60 s
        "SDTURBO_ENDPOINT_NAME": NAME,
        "SDTURBO_VARIANT_NAME": "AllTraffic",
    }
    role = _client(server, "iam").get_role(RoleName=f"{NAME}-sagemaker-execution")["Role"]
    assert model["ExecutionRoleArn"] == role["Arn"]

    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    lifecycle = json.loads(_client(server, "ecr").get_lifecycle_policy(repositoryName=NAME)["lifecyclePolicyText"])
    assert [r["action"]["type"] for r in lifecycle["rules"]] == ["expire", "expire"]

    # Execution role policy: least privilege, never "*" for actions and resources together.
    policy = _client(server, "iam").get_role_policy(RoleName=role["RoleName"], PolicyName=f"{NAME}-sagemaker-execution")
    doc = policy["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    for stmt in doc["Statement"]:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        assert not any("*" in a for a in actions) or "*" not in resources, stmt
        assert "*" not in actions

    # Blue/green canary with automatic rollback, as applied (moto does not echo DeploymentConfig).
    ep_state = _resources(state)["module.sd_turbo.module.endpoint[0].aws_sagemaker_endpoint.this"]
    [deployment] = ep_state["deployment_config"]
    [bg] = deployment["blue_green_update_policy"]
    [routing] = bg["traffic_routing_configuration"]
    assert routing["type"] == "CANARY"
    assert routing["canary_size"] == [{"type": "INSTANCE_COUNT", "value": 1}]
    rollback = {a["alarm_name"] for a in deployment["auto_rollback_configuration"][0]["alarms"]}
    assert rollback == {f"{NAME}-new-fleet-5xx-rate", f"{NAME}-new-fleet-latency-p90"}

    alarms = _alarms(server)
    assert rollback <= set(alarms)
    # Rollback judges the fleet of the configuration being deployed, on 5xx rate and latency.
    for name in rollback:
        assert _dims(alarms[name]) == {"EndpointName": NAME, "VariantName": "AllTraffic",
                                       "EndpointConfigName": endpoint["EndpointConfigName"]}
    assert (alarms[f"{NAME}-new-fleet-5xx-rate"]["MetricName"], alarms[f"{NAME}-new-fleet-5xx-rate"]["Statistic"]) == ("Invocation5XXErrors", "Average")
    # CloudWatch sums GPUUtilization / GPUMemoryUtilization over the instance's GPUs.
    gpu = alarms[f"{NAME}-gpu-utilization"]
    assert (gpu["Namespace"], gpu["MetricName"], gpu["Threshold"]) == ("/aws/sagemaker/Endpoints", "GPUUtilization", 90.0 * gpus)
    assert _dims(gpu) == {"EndpointName": NAME, "VariantName": "AllTraffic"}
    mem = alarms[f"{NAME}-gpu-memory-utilization"]
    assert (mem["Namespace"], mem["MetricName"], mem["Threshold"]) == ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization", 90.0 * gpus)
    err = alarms[f"{NAME}-invocation-5xx-errors"]
    assert (err["Namespace"], err["MetricName"], err["Statistic"], err["Threshold"]) == ("AWS/SageMaker", "Invocation5XXErrors", "Sum", 5.0)
    lat = alarms[f"{NAME}-model-latency-p90"]
    assert (lat["MetricName"], lat["ExtendedStatistic"], lat["Threshold"]) == ("ModelLatency", "p90", 3_000_000.0)
    [topic] = [t["TopicArn"] for t in _client(server, "sns").list_topics()["Topics"] if t["TopicArn"].endswith(f":{NAME}-alarms")]
    for name in (f"{NAME}-gpu-utilization", f"{NAME}-invocation-5xx-errors"):
        assert alarms[name]["AlarmActions"] == [topic]
    attrs = _client(server, "sns").get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attrs.get("KmsMasterKeyId")

    log_groups = _client(server, "logs").describe_log_groups(logGroupNamePrefix=f"/aws/sagemaker/Endpoints/{NAME}")["logGroups"]
    assert [g["retentionInDays"] for g in log_groups] == [30]

    aas = _client(server, "application-autoscaling")
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == f"endpoint/{NAME}/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["MaxCapacity"] == 3
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]}

    # Every SageMaker metric on the dashboard is one SageMaker publishes for this endpoint type.
    widgets = _dashboard(server)
    assert unpublished(widgets, endpoint_type) == []
    instances = _widget(widgets, "Instances in service")["metrics"]
    assert instances[0][0]["expression"] == "host_samples / (PERIOD(host_samples) / 60)"
    assert instances[1][:2] == ["/aws/sagemaker/Endpoints", "CPUUtilization"] and instances[1][-1]["stat"] == "SampleCount"
    return {"target": target, "policies": policies, "alarms": alarms, "config": config, "widgets": widgets,
            "model": model}


@pytest.mark.timeout(1800)
def test_production_root_apply_readback_rollout_destroy(tmp_path):
    def check(server, outputs, state):
        got = _check_common(server, state, instance_type="ml.g4dn.12xlarge", gpus=4, endpoint_type="realtime",
                            environment={"SDTURBO_MODEL": "stabilityai/sd-turbo"}, instances=3)
        assert got["config"]["ProductionVariants"][0]["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
        assert outputs["endpoint_name"] == NAME
        assert got["target"]["MinCapacity"] == 2  # production: two instances at least
        assert "AsyncInferenceConfig" not in got["config"]
        [policy] = got["policies"].values()
        assert policy["PolicyType"] == "TargetTrackingScaling"
        cfg = policy["TargetTrackingScalingPolicyConfiguration"]
        assert cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
        assert cfg["TargetValue"] == 32.0  # the app's max_batch_size 8 x 4 GPUs: one batch in flight per replica
        assert _client(server, "s3").list_buckets()["Buckets"] == []  # no bucket for real-time
        cmd = outputs["invoke_endpoint_command"]
        assert cmd.startswith(f"aws sagemaker-runtime invoke-endpoint --region {REGION} --endpoint-name {NAME} ")
        assert "--content-type application/json" in cmd and cmd.endswith("response.json")
        json.loads(cmd.split("--body '", 1)[1].rsplit("'", 1)[0])  # the body is valid JSON
        repo = _client(server, "ecr").describe_repositories(repositoryNames=[NAME])["repositories"][0]
        assert outputs["ecr_repository_url"] == repo["repositoryUri"]

        # Dashboard, as CloudWatch stores it: GPU graphs scaled to 4 GPUs, the app's EMF
        # metrics, the cost per 1,000 images from the price variable.
        widgets = got["widgets"]
        assert outputs["dashboard_url"].endswith(f"#dashboards/dashboard/{NAME}")
        gpu = _widget(widgets, "GPU utilisation")
        assert gpu["yAxis"]["left"]["max"] == 400 and gpu["annotations"]["horizontal"][0]["value"] == 360
        assert _widget(widgets, "GPU memory utilisation")["yAxis"]["left"]["max"] == 400
        latency = _widget(widgets, "ModelLatency")
        assert {m[-1]["stat"] for m in latency["metrics"] if isinstance(m[0], str)} == {"p50", "p95", "p99"}
        assert _widget(widgets, "Invocations")  # real-time endpoints publish Invocations
        emf = {m[1] for w in widgets for m in w["properties"].get("metrics", []) if m[0] == "SDTurbo"}
        assert emf == {"BatchSize", "QueueMs", "InferenceMs", "EncodeMs", "CacheHits", "CacheMisses", "SafetyRefusals", "Images"}
        assert all(m[2:6] == ["EndpointName", NAME, "VariantName", "AllTraffic"] for w in widgets for m in w["properties"].get("metrics", []) if m[0] == "SDTurbo")
        [rejections] = _widget(widgets, "App: rejections")["metrics"]
        assert "{SDTurbo,EndpointName,VariantName,ErrorType}" in rejections[0]["expression"]
        cost = _widget(widgets, "Estimated cost")
        expressions = {m[0]["id"]: m[0]["expression"] for m in cost["metrics"] if isinstance(m[0], dict)}
        assert expressions["cost"] == "7.5 * (host_samples / (PERIOD(host_samples) / 60)) * PERIOD(host_samples) / 3600 / images * 1000"
        inputs = {m[-1]["id"]: m[:2] for m in cost["metrics"] if isinstance(m[0], str)}
        assert inputs == {
            "images": ["SDTurbo", "Images"],
            "host_samples": ["/aws/sagemaker/Endpoints", "CPUUtilization"],
        }

        # GitHub OIDC deploy role: trust pinned to repo + branch + environment.
        iam = _client(server, "iam")
        role = iam.get_role(RoleName=f"{NAME}-github-actions-deploy")["Role"]
        assert outputs["github_actions_role_arn"] == role["Arn"]
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        [stmt] = trust["Statement"]
        assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert stmt["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
        subs = stmt["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        assert sorted(subs) == ["repo:acme/sd-turbo-serve:environment:production", "repo:acme/sd-turbo-serve:ref:refs/heads/main"]
        assert stmt["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        [provider] = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        assert provider["Arn"] == stmt["Principal"]["Federated"]

    _apply_read_destroy(tmp_path, PRODUCTION, PRODUCTION_VARS, check, rollout=True, deploy_role_calls=_check_deploy_role_allows)


@pytest.mark.timeout(1800)
def test_async_example_apply_readback_destroy(tmp_path):
    def check(server, outputs, state):
        stack = outputs["sd_turbo"]
        # Weights from S3: no Hub id (the container serves /opt/ml/model), offline, isolated, in the VPC.
        got = _check_common(server, state, instance_type="ml.g4dn.xlarge", gpus=1, endpoint_type="async",
                            environment={"SDTURBO_OFFLINE": "1"}, instances=3)
        model = got["model"]
        assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA_URL
        assert model["EnableNetworkIsolation"] is True
        ec2 = _client(server, "ec2")
        subnets = ec2.describe_subnets(SubnetIds=model["VpcConfig"]["Subnets"])["Subnets"]
        assert len({s["AvailabilityZone"] for s in subnets}) == 2  # two zones
        [vpc_id] = {s["VpcId"] for s in subnets}
        assert not ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
        services = {e["ServiceName"].rsplit(f"{REGION}.", 1)[1]: e["VpcEndpointType"] for e in endpoints}
        assert services == {"s3": "Gateway", "ecr.api": "Interface", "ecr.dkr": "Interface", "logs": "Interface",
                            "sts": "Interface", "sagemaker.runtime": "Interface"}
        assert "RoutingConfig" not in got["config"]["ProductionVariants"][0]  # async: SageMaker routes the queue
        # Async endpoints publish no Invocations: the dashboard has none.
        assert not [w for w in got["widgets"] if w["properties"].get("title") == "Invocations"]
        assert stack["endpoint_name"] == NAME and stack["endpoint_type"] == "async"
        assert got["target"]["MinCapacity"] == 0  # scale to zero

        bucket = stack["bucket_name"]
        async_cfg = got["config"]["AsyncInferenceConfig"]
        out = async_cfg["OutputConfig"]
        assert out["S3OutputPath"] == f"s3://{bucket}/async-outputs/"
        assert out["S3FailurePath"] == f"s3://{bucket}/async-failures/"
        assert out["KmsKeyId"]
        notif = out["NotificationConfig"]
        assert notif["SuccessTopic"].endswith(f":{NAME}-async-success")
        assert notif["ErrorTopic"].endswith(f":{NAME}-async-error")
        # 2 x the app's default max_batch_size (8) x 1 GPU: what one model replica holds.
        assert async_cfg["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 16

        policies = got["policies"]
        backlog = policies[f"{NAME}-backlog-target-tracking"]
        metric = backlog["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
        assert metric["MetricName"] == "ApproximateBacklogSizePerInstance"
        assert metric["Namespace"] == "AWS/SageMaker"
        assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": NAME}]
        step = policies[f"{NAME}-has-backlog-without-capacity"]
        assert step["PolicyType"] == "StepScaling"
        step_cfg = step["StepScalingPolicyConfiguration"]
        assert step_cfg["AdjustmentType"] == "ChangeInCapacity"
        assert [a["ScalingAdjustment"] for a in step_cfg["StepAdjustments"]] == [1]

        alarms = got["alarms"]
        trigger = alarms[f"{NAME}-has-backlog-without-capacity"]
        assert trigger["MetricName"] == "HasBacklogWithoutCapacity"
        assert trigger["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and trigger["Threshold"] == 1.0
        assert trigger["AlarmActions"] == [step["PolicyARN"]]
        age = alarms[f"{NAME}-async-backlog-age"]
        assert (age["MetricName"], age["Threshold"]) == ("ApproximateAgeOfOldestRequest", 900.0)
        assert _dims(age) == {"EndpointName": NAME}
        assert _widget(got["widgets"], "Async backlog")
        # No price in the example: the cost widget says what to set.
        assert any("instance_price_usd_per_hour" in w["properties"].get("markdown", "") for w in got["widgets"])

        s3 = _client(server, "s3")
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(pab.values()) and len(pab) == 4
        [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        expiring = {r["Filter"].get("Prefix"): r["Expiration"]["Days"] for r in lifecycle if "Expiration" in r}
        assert expiring == {"async-inputs/": 7, "async-outputs/": 7, "async-failures/": 7}
        cmd = outputs["invoke_endpoint_command"]
        assert f"aws sagemaker-runtime invoke-endpoint-async --region {REGION} --endpoint-name {NAME}" in cmd
        assert f"--input-location s3://{bucket}/async-inputs/request.json" in cmd
        assert stack.get("github_actions_role_arn") is None

    _apply_read_destroy(tmp_path, ASYNC_EXAMPLE, {"image_tag": IMAGE_TAG}, check)
