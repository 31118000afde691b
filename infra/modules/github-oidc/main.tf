################################################################################
# GitHub Actions OIDC deploy role
#
# Trust: token.actions.githubusercontent.com, audience sts.amazonaws.com, subject pinned to
#   repo:<github_repository>:ref:refs/heads/<github_branch>
#   repo:<github_repository>:environment:<github_environment>   (when set)
# where <github_repository> is "org/repo" (subject_format "classic") or, for repositories
# that present immutable subject claims, "org@<owner id>/repo@<repository id>" ("immutable").
# Permissions: push to the stack's ECR repository, run terraform for the stack (its own
# resources only, by name prefix), read/write the remote state (when given), invoke the endpoint.
# The role can read but not modify itself, the OIDC provider or the SageMaker execution role
# (which it passes to SageMaker): changes to those are applied by an administrator (bootstrap
# apply), never by the workflow they authorise. Otherwise the role could write any policy into
# the execution role and run a container of its own image with it.
# tests/infra/test_terraform_moto.py evaluates every call Terraform makes in a release and a
# rollout (and what AWS checks behind each) against this policy.
################################################################################

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  oidc_url = "https://token.actions.githubusercontent.com"
  # An existing provider is named by its ARN: no lookup, so no iam:ListOpenIDConnectProviders.
  create_provider = var.oidc_provider_arn == null
  oidc_arn        = local.create_provider ? aws_iam_openid_connect_provider.this[0].arn : var.oidc_provider_arn
  role_name       = "${var.name}-github-actions-deploy"
  arn_prefix      = "arn:${local.partition}"
  sagemaker       = "${local.arn_prefix}:sagemaker:${local.region}:${local.account_id}"
  log_group       = "${local.arn_prefix}:logs:${local.region}:${local.account_id}:log-group:${var.log_group_name}"
  state_prefix    = trimprefix(var.terraform_state_key_prefix, "/")

  # GitHub's subject claim names the repository as "owner/repo", or, with immutable subject
  # claims (default for repositories created or renamed from 2026-07-15), as
  # "owner@<owner id>/repo@<repository id>" (docs/infra.md, "GitHub Actions OIDC role").
  repo_parts   = split("/", var.github_repository)
  subject_repo = var.subject_format == "immutable" ? "${local.repo_parts[0]}@${var.github_repository_owner_id}/${local.repo_parts[1]}@${var.github_repository_id}" : var.github_repository

  subjects = concat(
    ["repo:${local.subject_repo}:ref:refs/heads/${var.github_branch}"],
    var.github_environment == null ? [] : ["repo:${local.subject_repo}:environment:${var.github_environment}"],
  )
}

resource "aws_iam_openid_connect_provider" "this" {
  count = local.create_provider ? 1 : 0

  url            = local.oidc_url
  client_id_list = ["sts.amazonaws.com"]
  # IAM no longer uses the thumbprint for GitHub (it trusts the root CA library), but the API
  # still wants one; this is GitHub's published intermediate thumbprint.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
  tags            = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "GitHubActionsOidc"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.subjects
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.role_name
  description          = "GitHub Actions (${var.github_repository}) deploys the ${var.name} SageMaker stack"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_111:The only statements with "*" are ecr:GetAuthorizationToken, the Application Auto Scaling APIs, kms:ListAliases and the EC2 Describe* reads of the VPC option, which have no resource-level permissions; every other statement names the stack's resources.
  #checkov:skip=CKV_AWS_356:"*" appears only where AWS supports no resource-level permissions (ecr:GetAuthorizationToken, Application Auto Scaling, kms:ListAliases, EC2 Describe*); the terraform test asserts no statement pairs wildcard actions with "*".
  # --- ECR: log in (no resource-level permissions) and push to the stack's repository
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid = "EcrPushAndManageRepository"
      actions = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:CompleteLayerUpload",
        "ecr:DescribeImages",
        "ecr:DescribeImageScanFindings",
        "ecr:DescribeRepositories",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetLifecyclePolicy",
        "ecr:GetRepositoryPolicy",
        "ecr:InitiateLayerUpload",
        "ecr:ListImages",
        "ecr:ListTagsForResource",
        "ecr:PutImage",
        "ecr:PutLifecyclePolicy",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:UploadLayerPart",
      ]
      resources = var.ecr_repository_arns
    }
  }

  # --- Terraform: SageMaker model / endpoint configuration / endpoint of the stack
  statement {
    sid = "SageMakerStack"
    actions = [
      "sagemaker:AddTags",
      "sagemaker:CreateEndpoint",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:CreateModel",
      "sagemaker:DeleteEndpoint",
      "sagemaker:DeleteEndpointConfig",
      "sagemaker:DeleteModel",
      "sagemaker:DeleteTags",
      "sagemaker:DescribeEndpoint",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:DescribeModel",
      "sagemaker:ListTags",
      "sagemaker:UpdateEndpoint",
      # Checked by Application Auto Scaling on the caller of RegisterScalableTarget (with
      # DescribeEndpoint and DescribeEndpointConfig above).
      "sagemaker:UpdateEndpointWeightsAndCapacities",
    ]
    resources = [
      "${local.sagemaker}:model/${var.name}-*",
      "${local.sagemaker}:endpoint-config/${var.name}-*",
      "${local.sagemaker}:endpoint/${var.endpoint_name}",
    ]
  }

  # --- Smoke test: sagemaker-runtime InvokeEndpoint / InvokeEndpointAsync
  statement {
    sid       = "InvokeEndpoint"
    actions   = ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync"]
    resources = ["${local.sagemaker}:endpoint/${var.endpoint_name}"]
  }

  # --- IAM: read the execution role (Terraform refreshes it) and pass it to SageMaker only;
  # read (not write) the deploy role. Writing either is an administrator's apply.
  statement {
    sid = "ReadExecutionRole"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:ListRolePolicies",
    ]
    resources = [var.execution_role_arn]
  }

  statement {
    sid       = "PassExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [var.execution_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid = "ReadDeployRoleAndOidcProvider"
    actions = [
      "iam:GetOpenIDConnectProvider",
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListRolePolicies",
    ]
    resources = [
      "${local.arn_prefix}:iam::${local.account_id}:role/${local.role_name}",
      local.oidc_arn,
    ]
  }

  statement {
    sid       = "AutoScalingServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["${local.arn_prefix}:iam::${local.account_id}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["sagemaker.application-autoscaling.amazonaws.com"]
    }
  }

  # --- Application Auto Scaling: its Describe*/Register/Put APIs have no resource-level permissions.
  statement {
    sid = "AutoScaling"
    actions = [
      "application-autoscaling:DeleteScalingPolicy",
      "application-autoscaling:DeregisterScalableTarget",
      "application-autoscaling:DescribeScalableTargets",
      "application-autoscaling:DescribeScalingActivities",
      "application-autoscaling:DescribeScalingPolicies",
      "application-autoscaling:ListTagsForResource",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:TagResource",
      "application-autoscaling:UntagResource",
    ]
    resources = ["*"]
  }

  # --- CloudWatch alarms and the dashboard of the stack (dashboard ARNs have no region)
  statement {
    sid = "Alarms"
    actions = [
      "cloudwatch:DeleteAlarms",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:ListTagsForResource",
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:TagResource",
      "cloudwatch:UntagResource",
    ]
    resources = ["${local.arn_prefix}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name}-*"]
  }

  # Target tracking creates, reads and deletes its own alarms, TargetTracking-<resource id>-*,
  # with the permissions of the caller of PutScalingPolicy / DeleteScalingPolicy.
  statement {
    sid       = "TargetTrackingAlarms"
    actions   = ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"]
    resources = ["${local.arn_prefix}:cloudwatch:${local.region}:${local.account_id}:alarm:TargetTracking-endpoint/${var.endpoint_name}/variant/*"]
  }

  statement {
    sid       = "Dashboard"
    actions   = ["cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"]
    resources = ["${local.arn_prefix}:cloudwatch::${local.account_id}:dashboard/${var.name}"]
  }

  # --- SNS topics of the stack
  statement {
    sid = "Topics"
    actions = [
      "sns:CreateTopic",
      "sns:DeleteTopic",
      "sns:GetSubscriptionAttributes",
      "sns:GetTopicAttributes",
      "sns:ListSubscriptionsByTopic",
      "sns:ListTagsForResource",
      "sns:SetSubscriptionAttributes",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:TagResource",
      "sns:Unsubscribe",
      "sns:UntagResource",
    ]
    resources = ["${local.arn_prefix}:sns:${local.region}:${local.account_id}:${var.name}-*"]
  }

  # --- Log group of the endpoint
  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["${local.arn_prefix}:logs:${local.region}:${local.account_id}:log-group:*"]
  }

  statement {
    sid = "EndpointLogGroup"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:ListTagsForResource",
      "logs:ListTagsLogGroup",
      "logs:PutRetentionPolicy",
      "logs:TagResource",
      "logs:UntagResource",
    ]
    resources = [local.log_group, "${local.log_group}:*"]
  }

  # --- KMS key of the stack (use and read; creation and policy changes are the bootstrap's)
  statement {
    sid = "UseStackKey"
    actions = [
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListResourceTags",
    ]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "ListKmsAliases"
    actions   = ["kms:ListAliases"]
    resources = ["*"] # ListAliases has no resource-level permissions
  }

  # --- The stack's VPC (created by an administrator's bootstrap): read on refresh. EC2's
  # Describe* actions support no resource-level permissions.
  dynamic "statement" {
    for_each = var.manages_vpc ? [1] : []
    content {
      sid = "ReadVpc"
      actions = [
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeNetworkAcls",
        "ec2:DescribePrefixLists",
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeVpcs",
      ]
      resources = ["*"]
    }
  }

  # --- Bucket of the stack (configuration refresh, async smoke test objects)
  dynamic "statement" {
    for_each = var.async_bucket == null ? [] : [var.async_bucket]
    content {
      sid = "StackBucketConfiguration"
      actions = [
        "s3:GetAccelerateConfiguration",
        "s3:GetBucketAcl",
        "s3:GetBucketCORS",
        "s3:GetBucketLocation",
        "s3:GetBucketLogging",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketOwnershipControls",
        "s3:GetBucketPolicy",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketRequestPayment",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:GetBucketWebsite",
        "s3:GetEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:GetReplicationConfiguration",
        "s3:ListBucket",
        "s3:PutBucketPolicy",
        "s3:PutBucketTagging",
        "s3:PutBucketVersioning",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
      ]
      resources = [statement.value.arn]
    }
  }

  dynamic "statement" {
    for_each = var.async_bucket == null ? [] : [var.async_bucket]
    content {
      sid       = "AsyncSmokeTestObjects"
      actions   = ["s3:GetObject", "s3:PutObject"]
      resources = [for p in statement.value.prefixes : "${statement.value.arn}/${p}*"]
    }
  }

  # --- Remote state (optional; the bucket/table are the user's, not created here)
  dynamic "statement" {
    for_each = var.terraform_state_bucket == null ? [] : [1]
    content {
      sid       = "StateList"
      actions   = ["s3:ListBucket"]
      resources = ["${local.arn_prefix}:s3:::${var.terraform_state_bucket}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.state_prefix}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.terraform_state_bucket == null ? [] : [1]
    content {
      sid       = "StateObjects"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      resources = ["${local.arn_prefix}:s3:::${var.terraform_state_bucket}/${local.state_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.terraform_lock_table == null ? [] : [1]
    content {
      sid       = "StateLock"
      actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
      resources = ["${local.arn_prefix}:dynamodb:${local.region}:${local.account_id}:table/${var.terraform_lock_table}"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = local.role_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}
