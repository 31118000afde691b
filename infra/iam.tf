################################################################################
# SageMaker execution role (least privilege)
################################################################################

data "aws_iam_policy_document" "execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-sagemaker-execution"
  description          = "SageMaker execution role of the ${var.name} endpoint"
  assume_role_policy   = data.aws_iam_policy_document.execution_assume.json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "execution" {
  # ecr:GetAuthorizationToken has no resource-level permissions: AWS requires "*".
  statement {
    sid       = "EcrAuthToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(local.pull_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrPull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = local.pull_repository_arns
    }
  }

  dynamic "statement" {
    for_each = local.create_bucket ? [1] : []
    content {
      sid     = "AsyncReadInputs"
      actions = ["s3:GetObject"]
      resources = [
        "${local.bucket_arn}/${local.async_input_prefix}*",
      ]
    }
  }

  dynamic "statement" {
    for_each = local.create_bucket ? [1] : []
    content {
      sid     = "AsyncWriteOutputs"
      actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
      resources = [
        "${local.bucket_arn}/${local.async_output_prefix}*",
        "${local.bucket_arn}/${local.async_failure_prefix}*",
      ]
    }
  }

  dynamic "statement" {
    for_each = var.model_data_url == null ? [] : [1]
    content {
      sid       = "ModelArtefact"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.model_data_bucket}/${local.model_data_key}"]
    }
  }

  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"]
    resources = [local.kms_key_arn]
  }

  statement {
    sid = "Logs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${local.endpoint_name}",
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${local.endpoint_name}:*",
    ]
  }

  # cloudwatch:PutMetricData has no resource-level permissions; it is limited by namespace.
  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/Endpoints", "AWS/SageMaker", "SDTurbo*"]
    }
  }

  dynamic "statement" {
    for_each = local.is_async ? [1] : []
    content {
      sid       = "AsyncNotifications"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.async_success[0].arn, aws_sns_topic.async_error[0].arn]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-sagemaker-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
