"""The policy evaluator and the permission tables the deploy-role test relies on."""

from __future__ import annotations

import pytest

from .iam_permissions import Context, denied, required
from .iam_policy import Decision, Request, evaluate, without_action
from .moto_scaffolding import AwsCall

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sd-turbo-sagemaker-execution"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:Describe*", "sagemaker:CreateModel"],
         "Resource": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:*/sd-turbo-*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": ROLE,
         "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
        {"Effect": "Deny", "Action": "sagemaker:DescribeModel", "Resource": "*",
         "Condition": {"StringLike": {"aws:RequestTag/team": "blocked-*"}}},
        {"Effect": "Allow", "NotAction": ["iam:*", "sagemaker:*"], "Resource": "*"},
    ],
}


def test_allow_needs_action_resource_and_condition():
    model = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/sd-turbo-abc"
    assert evaluate(POLICY, Request("sagemaker:DescribeEndpoint", model)) is Decision.ALLOW
    assert evaluate(POLICY, Request("SageMaker:describeendpoint", model)) is Decision.ALLOW  # actions ignore case
    assert evaluate(POLICY, Request("sagemaker:DeleteModel", model)) is Decision.IMPLICIT_DENY
    other = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/other"
    assert evaluate(POLICY, Request("sagemaker:DescribeModel", other)) is Decision.IMPLICIT_DENY
    upper = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/SD-TURBO-abc"
    assert evaluate(POLICY, Request("sagemaker:DescribeModel", upper)) is Decision.IMPLICIT_DENY  # resources keep case

    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    assert evaluate(POLICY, Request("iam:PassRole", ROLE, to_sagemaker)) is Decision.ALLOW
    assert evaluate(POLICY, Request("iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"})) is Decision.IMPLICIT_DENY
    assert evaluate(POLICY, Request("iam:PassRole", ROLE)) is Decision.IMPLICIT_DENY  # key absent: condition fails


def test_explicit_deny_wins_and_not_action_excludes():
    model = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/sd-turbo-abc"
    tagged = {"aws:RequestTag/team": "blocked-a"}
    assert evaluate(POLICY, Request("sagemaker:DescribeModel", model, tagged)) is Decision.EXPLICIT_DENY
    assert evaluate(POLICY, Request("sagemaker:DescribeModel", model)) is Decision.ALLOW
    assert evaluate(POLICY, Request("logs:DescribeLogGroups", "*")) is Decision.ALLOW  # NotAction: everything else
    assert evaluate(POLICY, Request("iam:CreateRole", "*")) is Decision.IMPLICIT_DENY


def test_an_operator_the_evaluator_does_not_model_fails_loudly():
    policy = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                             "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}}]}
    with pytest.raises(NotImplementedError):
        evaluate(policy, Request("s3:GetObject", "*"))


def test_without_action_removes_it_from_allow_statements():
    weaker = without_action(POLICY, "sagemaker:CreateModel")
    model = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/sd-turbo-abc"
    assert evaluate(POLICY, Request("sagemaker:CreateModel", model)) is Decision.ALLOW
    assert evaluate(weaker, Request("sagemaker:CreateModel", model)) is Decision.IMPLICIT_DENY


def test_create_model_also_needs_pass_role_to_sagemaker():
    call = AwsCall("sagemaker", "CreateModel", {"ModelName": "sd-turbo-abc", "ExecutionRoleArn": ROLE})
    requests = required(call, Context(account=ACCOUNT, region="us-east-1"))
    assert Request("iam:PassRole", ROLE, {"iam:PassedToService": "sagemaker.amazonaws.com"}) in requests
    assert denied(POLICY, [call], Context(account=ACCOUNT, region="us-east-1")) == []
    no_pass = without_action(POLICY, "iam:PassRole")
    [problem] = denied(no_pass, [call], Context(account=ACCOUNT, region="us-east-1"))
    assert "needs iam:PassRole" in problem


def test_register_scalable_target_needs_the_sagemaker_actions_and_the_service_linked_role():
    ctx = Context(account=ACCOUNT, region="us-east-1")
    ctx.observe(AwsCall("sagemaker", "CreateEndpoint", {"EndpointName": "sd-turbo", "EndpointConfigName": "sd-turbo-1"}))
    call = AwsCall("application-autoscaling", "RegisterScalableTarget",
                   {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/sd-turbo/variant/AllTraffic"})
    actions = {r.action for r in required(call, ctx)}
    assert actions == {
        "application-autoscaling:RegisterScalableTarget", "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpointWeightsAndCapacities",
        "iam:CreateServiceLinkedRole",
    }


def test_target_tracking_needs_the_alarms_it_creates():
    call = AwsCall("application-autoscaling", "PutScalingPolicy",
                   {"PolicyType": "TargetTrackingScaling", "ResourceId": "endpoint/sd-turbo/variant/AllTraffic"})
    alarms = {r.resource for r in required(call, Context(account=ACCOUNT, region="us-east-1")) if r.action == "cloudwatch:PutMetricAlarm"}
    assert alarms and all(a.startswith(f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:TargetTracking-endpoint/sd-turbo/") for a in alarms)


def test_a_call_neither_table_knows_fails():
    call = AwsCall("sagemaker", "CreateInferenceComponent", {"InferenceComponentName": "x"})
    [problem] = denied(POLICY, [call], Context(account=ACCOUNT, region="us-east-1"))
    assert problem.startswith("unmapped: sagemaker:CreateInferenceComponent")
