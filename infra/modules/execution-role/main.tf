################################################################################
# SageMaker execution role: what the model container may do, and nothing more.
# Every statement names its resources, except the two APIs that have no
# resource-level permissions (ecr:GetAuthorizationToken, cloudwatch:PutMetricData).
################################################################################

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  log_group  = "arn:${local.partition}:logs:${data.aws_region.current.name}:${local.account_id}:log-group:${var.log_group_name}"

  # s3://bucket/key -> arn:aws:s3:::bucket/key
  model_data_arn = var.model_data_url == null ? null : "arn:${local.partition}:s3:::${trimprefix(var.model_data_url, "s3://")}"
  # s3://bucket/prefix/ -> bucket, prefix/
  model_source_bucket = var.model_data_source == null ? null : split("/", trimprefix(var.model_data_source, "s3://"))[0]
  model_source_prefix = var.model_data_source == null ? null : trimprefix(trimprefix(var.model_data_source, "s3://"), "${local.model_source_bucket}/")
}

data "aws_iam_policy_document" "assume" {
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

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = var.description
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "EcrAuthToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrPull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = var.ecr_repository_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.s3_read_arns) > 0 ? [1] : []
    content {
      sid       = "AsyncReadInputs"
      actions   = ["s3:GetObject"]
      resources = var.s3_read_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.s3_write_arns) > 0 ? [1] : []
    content {
      sid       = "AsyncWriteOutputs"
      actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
      resources = var.s3_write_arns
    }
  }

  dynamic "statement" {
    for_each = local.model_data_arn == null ? [] : [1]
    content {
      sid       = "ModelArtefact"
      actions   = ["s3:GetObject"]
      resources = [local.model_data_arn]
    }
  }

  dynamic "statement" {
    for_each = var.model_data_source == null ? [] : [1]
    content {
      sid       = "ModelSourceObjects"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.model_source_bucket}/${local.model_source_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.model_data_source == null ? [] : [1]
    content {
      sid       = "ModelSourceList"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${local.model_source_bucket}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.model_source_prefix}*"]
      }
    }
  }

  # SageMaker attaches the model's network interfaces in the VPC with the execution role
  # (https://docs.aws.amazon.com/sagemaker/latest/dg/host-vpc.html). The EC2 actions support no
  # resource-level scoping that SageMaker's calls could satisfy before the interfaces exist.
  dynamic "statement" {
    for_each = var.in_vpc ? [1] : []
    content {
      sid = "VpcNetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
      ]
      resources = ["*"]
    }
  }

  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.log_group, "${local.log_group}:*"]
  }

  # PutMetricData has no resource-level permissions; it is limited by namespace.
  statement {
    sid       = "Metrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = var.metric_namespaces
    }
  }

  dynamic "statement" {
    for_each = length(var.sns_publish_topic_arns) > 0 ? [1] : []
    content {
      sid       = "AsyncNotifications"
      actions   = ["sns:Publish"]
      resources = var.sns_publish_topic_arns
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = var.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}
