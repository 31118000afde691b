"""Which IAM permissions AWS checks for an API call Terraform makes, built from the call's input.

Two tables:

* ``CALL_RESOURCES``: for each operation the stack's Terraform calls, the resource ARN(s) AWS
  authorises the call's own action (``<service prefix>:<Operation>``) against, built from the
  request parameters, as each service's page of the Service Authorization Reference lists them
  (``SERVICE_PAGES``). ``"*"`` where the service supports no resource-level permission for it.
* ``IMPLIED``: permissions AWS checks *behind* a call, on the caller's behalf, each row citing
  the AWS page that says so (``CreateModel`` -> ``iam:PassRole``; ``RegisterScalableTarget`` ->
  the SageMaker actions and the service-linked role; ``PutScalingPolicy`` -> the alarms named
  ``TargetTracking-*``; ...).

``required(call, ctx)`` raises ``Unmapped`` for an operation neither table knows: a new call
Terraform starts making must be looked up and added here, never passed silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .iam_policy import Decision, Request, evaluate
from .moto_scaffolding import AwsCall

SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
SERVICE_PAGES = {
    "sagemaker": f"{SAR}/list_amazonsagemaker.html",
    "application-autoscaling": f"{SAR}/list_applicationautoscaling.html",
    "iam": f"{SAR}/list_awsidentityandaccessmanagementiam.html",
    "cloudwatch": f"{SAR}/list_amazoncloudwatch.html",
    "logs": f"{SAR}/list_amazoncloudwatchlogs.html",
    "kms": f"{SAR}/list_awskeymanagementservice.html",
    "ecr": f"{SAR}/list_amazonelasticcontainerregistry.html",
    "sns": f"{SAR}/list_amazonsns.html",
    "sts": f"{SAR}/list_awssecuritytokenservice.html",
    "ec2": f"{SAR}/list_amazonec2.html",
}
# The IAM action prefix of each botocore service name the provider's calls carry.
PREFIX = {service: service for service in SERVICE_PAGES}

# Calls AWS authorises without any permission.
NO_PERMISSION = {
    ("sts", "GetCallerIdentity"): "https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html",
}
# Calls whose denial the provider expects and steps past: to find the account id it tries
# iam:GetUser first, ignores the failure (a role session is no IAM user, and the role need not
# allow it), then asks sts:GetCallerIdentity (getAccountIDAndPartition in hashicorp/aws-sdk-go-base,
# https://github.com/hashicorp/aws-sdk-go-base, "Ignore iam:GetUser failure" in its tests).
DENIAL_TOLERATED = {("iam", "GetUser")}


class Unmapped(Exception):
    """A call whose permissions neither table describes."""


@dataclass
class Context:
    """The account, and what earlier calls in the record created (resolved by later calls)."""

    account: str
    region: str
    partition: str = "aws"
    kms_aliases: dict[str, str] = field(default_factory=dict)  # alias name -> key id
    endpoint_configs: dict[str, dict] = field(default_factory=dict)  # name -> CreateEndpointConfig input
    endpoint_config_of: dict[str, str] = field(default_factory=dict)  # endpoint -> its configuration

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def sagemaker(self, kind: str, name: str) -> str:
        # SageMaker ARNs carry resource names in lower case.
        return self.arn("sagemaker", f"{kind}/{name.lower()}")

    def kms_key(self, key_id: str) -> str:
        if key_id.startswith("arn:") and ":alias/" in key_id:
            key_id = key_id.split(":", 5)[5]
        if key_id.startswith("alias/"):
            key_id = self.kms_aliases[key_id]
        return key_id if key_id.startswith("arn:") else self.arn("kms", f"key/{key_id}")

    def log_group(self, name: str) -> str:
        return self.arn("logs", f"log-group:{name}:*")

    def observe(self, call: AwsCall) -> None:
        """Remember what a call created, for the rows that need it later."""
        p = call.params
        if (call.service, call.action) == ("sagemaker", "CreateEndpointConfig"):
            self.endpoint_configs[p["EndpointConfigName"]] = p
        elif (call.service, call.action) in (("sagemaker", "CreateEndpoint"), ("sagemaker", "UpdateEndpoint")):
            self.endpoint_config_of[p["EndpointName"]] = p["EndpointConfigName"]
        elif (call.service, call.action) == ("kms", "CreateAlias"):
            self.kms_aliases[p["AliasName"]] = p["TargetKeyId"]


Resources = Callable[[dict, Context], list[str]]


def _each(param: str, build: Callable[[str, Context], str]) -> Resources:
    def resources(p: dict, ctx: Context) -> list[str]:
        values = p.get(param)
        if not values:
            return ["*"]
        return [build(v, ctx) for v in (values if isinstance(values, list) else [values])]

    return resources


def _given_arn(param: str) -> Resources:
    return lambda p, ctx: [p[param]]


def _sm(kind: str, param: str) -> Resources:
    return lambda p, ctx: [ctx.sagemaker(kind, p[param])]


def _role(p: dict, ctx: Context) -> list[str]:
    return [ctx.arn("iam", f"role/{p['RoleName']}", region=False)]


def _repo(p: dict, ctx: Context) -> list[str]:
    return [ctx.arn("ecr", f"repository/{p['repositoryName']}")]


def _alarm(name: str, ctx: Context) -> str:
    return ctx.arn("cloudwatch", f"alarm:{name}")


def _dashboard(name: str, ctx: Context) -> str:
    return ctx.arn("cloudwatch", f"dashboard/{name}", region=False)


def _topic_of_subscription(p: dict, ctx: Context) -> list[str]:
    return [p["SubscriptionArn"].rsplit(":", 1)[0]]


def _key(p: dict, ctx: Context) -> list[str]:
    return [ctx.kms_key(p["KeyId"])]


def _log_group_name(p: dict, ctx: Context) -> list[str]:
    return [ctx.log_group(p["logGroupName"])]


def _all_log_groups(p: dict, ctx: Context) -> list[str]:
    return [ctx.arn("logs", "log-group:*")]


def _any(p: dict, ctx: Context) -> list[str]:
    return ["*"]


# (service, operation) -> the resources its own action is authorised against.
CALL_RESOURCES: dict[tuple[str, str], Resources] = {
    # SageMaker
    ("sagemaker", "CreateModel"): _sm("model", "ModelName"),
    ("sagemaker", "DescribeModel"): _sm("model", "ModelName"),
    ("sagemaker", "DeleteModel"): _sm("model", "ModelName"),
    ("sagemaker", "CreateEndpointConfig"): _sm("endpoint-config", "EndpointConfigName"),
    ("sagemaker", "DescribeEndpointConfig"): _sm("endpoint-config", "EndpointConfigName"),
    ("sagemaker", "DeleteEndpointConfig"): _sm("endpoint-config", "EndpointConfigName"),
    ("sagemaker", "CreateEndpoint"): _sm("endpoint", "EndpointName"),
    ("sagemaker", "DescribeEndpoint"): _sm("endpoint", "EndpointName"),
    ("sagemaker", "UpdateEndpoint"): _sm("endpoint", "EndpointName"),
    ("sagemaker", "DeleteEndpoint"): _sm("endpoint", "EndpointName"),
    ("sagemaker", "ListTags"): _given_arn("ResourceArn"),
    ("sagemaker", "AddTags"): _given_arn("ResourceArn"),
    ("sagemaker", "DeleteTags"): _given_arn("ResourceArn"),
    # Application Auto Scaling: scalable-target ARNs exist only after registration; the stack
    # grants these actions on "*" (the Describe* actions support no resource-level permission).
    ("application-autoscaling", "RegisterScalableTarget"): _any,
    ("application-autoscaling", "DescribeScalableTargets"): _any,
    ("application-autoscaling", "DeregisterScalableTarget"): _any,
    ("application-autoscaling", "PutScalingPolicy"): _any,
    ("application-autoscaling", "DescribeScalingPolicies"): _any,
    ("application-autoscaling", "DeleteScalingPolicy"): _any,
    ("application-autoscaling", "ListTagsForResource"): _given_arn("ResourceARN"),
    ("application-autoscaling", "TagResource"): _given_arn("ResourceARN"),
    ("application-autoscaling", "UntagResource"): _given_arn("ResourceARN"),
    # IAM
    ("iam", "GetRole"): _role,
    ("iam", "CreateRole"): _role,
    ("iam", "DeleteRole"): _role,
    ("iam", "UpdateRole"): _role,
    ("iam", "UpdateAssumeRolePolicy"): _role,
    ("iam", "TagRole"): _role,
    ("iam", "UntagRole"): _role,
    ("iam", "GetRolePolicy"): _role,
    ("iam", "PutRolePolicy"): _role,
    ("iam", "DeleteRolePolicy"): _role,
    ("iam", "ListRolePolicies"): _role,
    ("iam", "ListAttachedRolePolicies"): _role,
    ("iam", "ListInstanceProfilesForRole"): _role,
    ("iam", "GetOpenIDConnectProvider"): _given_arn("OpenIDConnectProviderArn"),
    ("iam", "ListOpenIDConnectProviders"): _any,
    # CloudWatch
    ("cloudwatch", "PutMetricAlarm"): _each("AlarmName", _alarm),
    ("cloudwatch", "DescribeAlarms"): _each("AlarmNames", _alarm),
    ("cloudwatch", "DeleteAlarms"): _each("AlarmNames", _alarm),
    ("cloudwatch", "ListTagsForResource"): _given_arn("ResourceARN"),
    ("cloudwatch", "TagResource"): _given_arn("ResourceARN"),
    ("cloudwatch", "UntagResource"): _given_arn("ResourceARN"),
    ("cloudwatch", "PutDashboard"): _each("DashboardName", _dashboard),
    ("cloudwatch", "GetDashboard"): _each("DashboardName", _dashboard),
    ("cloudwatch", "DeleteDashboards"): _each("DashboardNames", _dashboard),
    # CloudWatch Logs
    ("logs", "DescribeLogGroups"): _all_log_groups,
    ("logs", "CreateLogGroup"): _log_group_name,
    ("logs", "DeleteLogGroup"): _log_group_name,
    ("logs", "PutRetentionPolicy"): _log_group_name,
    ("logs", "AssociateKmsKey"): _log_group_name,
    ("logs", "ListTagsLogGroup"): _log_group_name,
    ("logs", "ListTagsForResource"): lambda p, ctx: [p["resourceArn"]],
    ("logs", "TagResource"): lambda p, ctx: [p["resourceArn"]],
    ("logs", "UntagResource"): lambda p, ctx: [p["resourceArn"]],
    # KMS
    ("kms", "DescribeKey"): _key,
    ("kms", "GetKeyPolicy"): _key,
    ("kms", "GetKeyRotationStatus"): _key,
    ("kms", "ListResourceTags"): _key,
    ("kms", "ListAliases"): _any,
    # ECR
    ("ecr", "DescribeRepositories"): _each("repositoryNames", lambda n, ctx: ctx.arn("ecr", f"repository/{n}")),
    ("ecr", "GetLifecyclePolicy"): _repo,
    ("ecr", "GetRepositoryPolicy"): _repo,
    ("ecr", "ListTagsForResource"): _given_arn("resourceArn"),
    # SNS
    ("sns", "GetTopicAttributes"): _given_arn("TopicArn"),
    ("sns", "ListSubscriptionsByTopic"): _given_arn("TopicArn"),
    ("sns", "ListTagsForResource"): _given_arn("ResourceArn"),
    ("sns", "GetSubscriptionAttributes"): _topic_of_subscription,
    # EC2 (the VPC option): Describe* support no resource-level permission.
    ("ec2", "DescribeVpcs"): _any,
    ("ec2", "DescribeVpcAttribute"): _any,
    ("ec2", "DescribeSubnets"): _any,
    ("ec2", "DescribeSecurityGroups"): _any,
    ("ec2", "DescribeSecurityGroupRules"): _any,
    ("ec2", "DescribeVpcEndpoints"): _any,
    ("ec2", "DescribeRouteTables"): _any,
    ("ec2", "DescribeNetworkAcls"): _any,
    ("ec2", "DescribePrefixLists"): _any,
    ("ec2", "DescribeAvailabilityZones"): _any,
}


@dataclass(frozen=True)
class Implied:
    """Permissions AWS checks behind a call, and the AWS page that says so."""

    source: str
    permissions: Callable[[dict, Context], list[Request]]


def _pass_execution_role(p: dict, ctx: Context) -> list[Request]:
    return [Request("iam:PassRole", p["ExecutionRoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"})]


def _endpoint_key_grant(p: dict, ctx: Context) -> list[Request]:
    config = ctx.endpoint_configs.get(p["EndpointConfigName"], {})
    return [Request("kms:CreateGrant", ctx.kms_key(config["KmsKeyId"]))] if config.get("KmsKeyId") else []


def _scalable_sagemaker_variant(p: dict, ctx: Context) -> list[Request]:
    if p.get("ServiceNamespace") != "sagemaker":
        raise Unmapped(f"RegisterScalableTarget for {p.get('ServiceNamespace')}")
    endpoint = p["ResourceId"].split("/")[1]  # endpoint/<name>/variant/<variant>
    endpoint_arn = ctx.sagemaker("endpoint", endpoint)
    config = ctx.endpoint_config_of.get(endpoint)
    requests = [
        Request("sagemaker:DescribeEndpoint", endpoint_arn),
        Request("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint_arn),
        Request("iam:CreateServiceLinkedRole",
                ctx.arn("iam", "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint", region=False),
                {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}),
    ]
    if config:
        requests.append(Request("sagemaker:DescribeEndpointConfig", ctx.sagemaker("endpoint-config", config)))
    return requests


def _target_tracking_alarms(p: dict, ctx: Context) -> list[Request]:
    if p.get("PolicyType") != "TargetTrackingScaling":
        return []
    # Target tracking creates and owns alarms named TargetTracking-<resource id>-AlarmHigh/Low-<uuid>.
    names = [f"TargetTracking-{p['ResourceId']}-{kind}-00000000-0000-0000-0000-000000000000" for kind in ("AlarmHigh", "AlarmLow")]
    return [Request(action, _alarm(name, ctx)) for name in names
            for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms")]


def _delete_target_tracking_alarms(p: dict, ctx: Context) -> list[Request]:
    names = [f"TargetTracking-{p['ResourceId']}-AlarmHigh-00000000-0000-0000-0000-000000000000"]
    return [Request(action, _alarm(name, ctx)) for name in names
            for action in ("cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms")]


AAS_PERMISSIONS = ("https://docs.aws.amazon.com/autoscaling/application/userguide/"
                   "security_iam_id-based-policy-examples.html#application-auto-scaling-additional-permissions")
IMPLIED: dict[tuple[str, str], Implied] = {
    ("sagemaker", "CreateModel"): Implied(
        "https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html (CreateModel: iam:PassRole); "
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_passedtoservice",
        _pass_execution_role,
    ),
    ("sagemaker", "CreateEndpoint"): Implied(
        "https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html "
        "(CreateEndpoint: kms:CreateGrant when the endpoint configuration has a KmsKeyId)",
        _endpoint_key_grant,
    ),
    ("sagemaker", "UpdateEndpoint"): Implied(
        "https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html "
        "(UpdateEndpoint: kms:CreateGrant when the endpoint configuration has a KmsKeyId)",
        _endpoint_key_grant,
    ),
    ("application-autoscaling", "RegisterScalableTarget"): Implied(
        f"{AAS_PERMISSIONS} (SageMaker: DescribeEndpoint, DescribeEndpointConfig, "
        "UpdateEndpointWeightsAndCapacities); https://docs.aws.amazon.com/autoscaling/application/userguide/"
        "application-auto-scaling-service-linked-roles.html (iam:CreateServiceLinkedRole on first registration); "
        "https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-prerequisites.html",
        _scalable_sagemaker_variant,
    ),
    ("application-autoscaling", "PutScalingPolicy"): Implied(
        f"{AAS_PERMISSIONS} (PutScalingPolicy: cloudwatch:DescribeAlarms, PutMetricAlarm, DeleteAlarms); "
        "https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking.html "
        "(target tracking creates and manages alarms named TargetTracking-*)",
        _target_tracking_alarms,
    ),
    ("application-autoscaling", "DeleteScalingPolicy"): Implied(
        f"{AAS_PERMISSIONS} (DeleteScalingPolicy: cloudwatch:DescribeAlarms, DeleteAlarms)",
        _delete_target_tracking_alarms,
    ),
}


def required(call: AwsCall, ctx: Context) -> list[Request]:
    """Every permission AWS checks for ``call``; raises Unmapped when the tables do not know it."""
    key = (call.service, call.action)
    if key in NO_PERMISSION or key in DENIAL_TOLERATED:
        return []
    if key not in CALL_RESOURCES:
        raise Unmapped(f"{call.service}:{call.action} is in neither table of tests/infra/iam_permissions.py "
                       f"(look it up in {SERVICE_PAGES.get(call.service, 'the Service Authorization Reference')})")
    action = f"{PREFIX[call.service]}:{call.action}"
    requests = [Request(action, arn) for arn in CALL_RESOURCES[key](call.params, ctx)]
    if key in IMPLIED:
        requests += IMPLIED[key].permissions(call.params, ctx)
    return requests


def denied(policy: dict, calls: list[AwsCall], ctx: Context) -> list[str]:
    """Every permission ``calls`` need that ``policy`` does not allow, and every unmapped call."""
    problems: list[str] = []
    for call in calls:
        try:
            requests = required(call, ctx)
        except Unmapped as unmapped:
            problems.append(f"unmapped: {unmapped}")
            continue
        finally:
            ctx.observe(call)
        for request in requests:
            decision = evaluate(policy, request)
            if decision is not Decision.ALLOW:
                context = f" with {dict(request.context)}" if request.context else ""
                problems.append(f"{call.service}:{call.action} needs {request.action} on {request.resource}{context}: {decision.value}")
    return sorted(set(problems))
