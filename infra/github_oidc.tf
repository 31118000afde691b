################################################################################
# GitHub Actions OIDC deploy role (optional)
#
# Trust: token.actions.githubusercontent.com, audience sts.amazonaws.com, subject pinned to
#   repo:<github_repository>:ref:refs/heads/<github_branch>
#   repo:<github_repository>:environment:<github_environment>   (when set)
# Permissions: push to this stack's ECR repository, run terraform for this stack (its own
# resources only, by name prefix), read/write the remote state (when given), invoke the endpoint.
# The role can read but not modify itself or the OIDC provider: changes to those are applied by
# an administrator (bootstrap apply), never by the workflow it authorises.
################################################################################

locals {
  github_oidc_url     = "https://token.actions.githubusercontent.com"
  create_github_role  = var.create_github_oidc_role
  github_oidc_arn     = !local.create_github_role ? null : (var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn)
  github_role_name    = "${var.name}-github-actions-deploy"
  stack_role_arn_glob = "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-*"

  github_subjects = !local.create_github_role ? [] : concat(
    ["repo:${var.github_repository}:ref:refs/heads/${var.github_branch}"],
    var.github_environment == null ? [] : ["repo:${var.github_repository}:environment:${var.github_environment}"],
  )

  sagemaker_arn_prefix = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}"
  state_key_prefix     = trimprefix(var.terraform_state_key_prefix, "/")
}

resource "aws_iam_openid_connect_provider" "github" {
  count = local.create_github_role && var.create_github_oidc_provider ? 1 : 0

  url            = local.github_oidc_url
  client_id_list = ["sts.amazonaws.com"]
  # IAM no longer uses the thumbprint for GitHub (it trusts the root CA library), but the API
  # still wants one; this is GitHub's published intermediate thumbprint.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
  tags            = local.tags
}

data "aws_iam_openid_connect_provider" "github" {
  count = local.create_github_role && !var.create_github_oidc_provider ? 1 : 0

  url = local.github_oidc_url
}

data "aws_iam_policy_document" "github_assume" {
  count = local.create_github_role ? 1 : 0

  statement {
    sid     = "GitHubActionsOidc"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.github_subjects
    }
  }
}

resource "aws_iam_role" "github_actions" {
  count = local.create_github_role ? 1 : 0

  name                 = local.github_role_name
  description          = "GitHub Actions (${var.github_repository}) deploys the ${var.name} SageMaker stack"
  assume_role_policy   = data.aws_iam_policy_document.github_assume[0].json
  max_session_duration = 3600
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = var.github_repository != null
      error_message = "create_github_oidc_role = true needs github_repository (\"org/repo\")."
    }
  }
}

data "aws_iam_policy_document" "github_actions" {
  count = local.create_github_role ? 1 : 0

  # --- ECR: log in (no resource-level permissions) and push to this stack's repository
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.create_ecr_repository ? [1] : []
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
      resources = [local.ecr_repository_arn]
    }
  }

  # --- Terraform: SageMaker model / endpoint configuration / endpoint of this stack
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
    ]
    resources = [
      "${local.sagemaker_arn_prefix}:model/${var.name}-*",
      "${local.sagemaker_arn_prefix}:endpoint-config/${var.name}-*",
      "${local.sagemaker_arn_prefix}:endpoint/${local.endpoint_name}",
    ]
  }

  # --- Smoke test: sagemaker-runtime InvokeEndpoint / InvokeEndpointAsync
  statement {
    sid       = "InvokeEndpoint"
    actions   = ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync"]
    resources = ["${local.sagemaker_arn_prefix}:endpoint/${local.endpoint_name}"]
  }

  # --- IAM: manage the execution role, pass it to SageMaker only; read (not write) the deploy role
  statement {
    sid = "ManageExecutionRole"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:DeleteRolePolicy",
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:ListRolePolicies",
      "iam:PutRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
    ]
    resources = [aws_iam_role.execution.arn]
  }

  statement {
    sid       = "PassExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn]
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
      "arn:${local.partition}:iam::${local.account_id}:role/${local.github_role_name}",
      local.github_oidc_arn,
    ]
  }

  statement {
    sid       = "AutoScalingServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"]
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

  # --- CloudWatch alarms of this stack
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
    resources = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name}-*"]
  }

  # --- SNS topics of this stack
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
    resources = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.name}-*"]
  }

  # --- Log group of the endpoint
  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
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
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${local.endpoint_name}",
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${local.endpoint_name}:*",
    ]
  }

  # --- KMS key of this stack (use and read; creation and policy changes are the bootstrap's)
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
    resources = [local.kms_key_arn]
  }

  statement {
    sid       = "ListKmsAliases"
    actions   = ["kms:ListAliases"]
    resources = ["*"] # ListAliases has no resource-level permissions
  }

  # --- Bucket of this stack (configuration refresh, async smoke test objects)
  dynamic "statement" {
    for_each = local.create_bucket ? [1] : []
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
      resources = [local.bucket_arn]
    }
  }

  dynamic "statement" {
    for_each = local.create_bucket ? [1] : []
    content {
      sid     = "AsyncSmokeTestObjects"
      actions = ["s3:GetObject", "s3:PutObject"]
      resources = [
        "${local.bucket_arn}/${local.async_input_prefix}*",
        "${local.bucket_arn}/${local.async_output_prefix}*",
        "${local.bucket_arn}/${local.async_failure_prefix}*",
      ]
    }
  }

  # --- Remote state (optional; the bucket/table are the user's, not created here)
  dynamic "statement" {
    for_each = var.terraform_state_bucket == null ? [] : [1]
    content {
      sid       = "StateList"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${var.terraform_state_bucket}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.state_key_prefix}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.terraform_state_bucket == null ? [] : [1]
    content {
      sid       = "StateObjects"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      resources = ["arn:${local.partition}:s3:::${var.terraform_state_bucket}/${local.state_key_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.terraform_lock_table == null ? [] : [1]
    content {
      sid       = "StateLock"
      actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
      resources = ["arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.terraform_lock_table}"]
    }
  }
}

resource "aws_iam_role_policy" "github_actions" {
  count = local.create_github_role ? 1 : 0

  name   = local.github_role_name
  role   = aws_iam_role.github_actions[0].id
  policy = data.aws_iam_policy_document.github_actions[0].json
}
