data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  is_async        = var.endpoint_type == "async"
  create_endpoint = var.create_endpoint
  create_bucket   = coalesce(var.create_bucket, local.is_async)
  create_kms_key  = var.kms_key_arn == null

  endpoint_name = var.name
  variant_name  = var.variant_name

  kms_key_arn = local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  ecr_repository_name = coalesce(var.ecr_repository_name, var.name)
  ecr_repository_arn  = var.create_ecr_repository ? aws_ecr_repository.this[0].arn : null

  image_uri = (
    var.image_uri != null ? var.image_uri :
    var.create_ecr_repository && var.image_tag != null ? "${aws_ecr_repository.this[0].repository_url}:${var.image_tag}" :
    null
  )

  # An image_uri in another ECR repository (e.g. a shared registry) must be pullable too.
  external_image_ecr = var.image_uri == null ? [] : regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.image_uri)
  pull_repository_arns = compact(concat(
    [local.ecr_repository_arn],
    [for m in local.external_image_ecr : "arn:${local.partition}:ecr:${m[1]}:${m[0]}:repository/${m[2]}"],
  ))

  bucket_name = local.create_bucket ? aws_s3_bucket.this[0].id : null
  bucket_arn  = local.create_bucket ? aws_s3_bucket.this[0].arn : null

  async_input_prefix   = "async-inputs/"
  async_output_prefix  = "async-outputs/"
  async_failure_prefix = "async-failures/"

  # Instance families with local NVMe instance storage: SageMaker rejects a KMS key for the
  # ML storage volume there (the instance store is hardware-encrypted).
  instance_has_local_nvme = can(regex("^ml\\.([a-z]+[0-9]+[a-z]*d[a-z]*|g5|g6|g6e|gr6|p5|p5e|p5en)\\.", var.instance_type))
  endpoint_volume_kms     = coalesce(var.endpoint_volume_encryption, !local.instance_has_local_nvme)

  model_data_bucket = var.model_data_url == null ? null : split("/", trimprefix(var.model_data_url, "s3://"))[0]
  model_data_key    = var.model_data_url == null ? null : join("/", slice(split("/", trimprefix(var.model_data_url, "s3://")), 1, length(split("/", trimprefix(var.model_data_url, "s3://")))))

  container_environment = merge(
    {
      SDTURBO_MODEL          = var.model_id
      SDTURBO_MAX_BATCH_SIZE = tostring(var.max_batch_size)
      SDTURBO_PORT           = "8080"
    },
    var.model_revision == null ? {} : { SDTURBO_MODEL_REVISION = var.model_revision },
    var.container_environment,
  )

  # A new model name whenever the container definition changes, so the endpoint configuration
  # (and therefore the endpoint, through a blue/green deployment) follows.
  model_hash = substr(sha1(jsonencode({
    image = local.image_uri
    data  = var.model_data_url
    env   = local.container_environment
    iso   = var.enable_network_isolation
  })), 0, 10)

  tags = merge({ "sd-turbo-serve:stack" = var.name }, var.tags)
}

################################################################################
# KMS key (bucket, SNS topics, logs, ECR, async output)
################################################################################

data "aws_iam_policy_document" "kms" {
  count = local.create_kms_key ? 1 : 0

  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.${local.dns_suffix}"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/Endpoints/${local.endpoint_name}*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsToEncryptedSns"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "${var.name}: SageMaker endpoint, async bucket, SNS topics, logs and ECR"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# ECR repository
################################################################################

resource "aws_ecr_repository" "this" {
  count = var.create_ecr_repository ? 1 : 0

  name                 = local.ecr_repository_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.ecr_force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = local.kms_key_arn
  }

  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  count = var.create_ecr_repository ? 1 : 0

  repository = aws_ecr_repository.this[0].name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.ecr_max_image_count} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_max_image_count
        }
        action = { type = "expire" }
      },
    ]
  })
}

################################################################################
# S3 bucket (async inputs / outputs / failures, optional model artefacts)
################################################################################

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Holds transient async payloads that expire after days; server access logs would need a second bucket per stack. Use CloudTrail S3 data events (account-level choice) for auditing.
  #checkov:skip=CKV_AWS_144:Cross-region replication of short-lived async requests/responses doubles storage cost and has no recovery value (clients resubmit).
  #checkov:skip=CKV2_AWS_62:SageMaker already publishes per-request SNS success/error notifications for async results; S3 event notifications would duplicate them.
  count = local.create_bucket ? 1 : 0

  bucket        = coalesce(var.bucket_name, "${var.name}-${local.account_id}-${local.region}")
  force_destroy = var.bucket_force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  count = local.create_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.this[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  count = local.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  count = local.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  count = local.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = local.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  dynamic "rule" {
    for_each = toset([local.async_input_prefix, local.async_output_prefix, local.async_failure_prefix])
    content {
      id     = "expire-${trimsuffix(rule.value, "/")}"
      status = "Enabled"
      filter {
        prefix = rule.value
      }
      expiration {
        days = var.async_object_expiration_days
      }
      noncurrent_version_expiration {
        noncurrent_days = 1
      }
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  count = local.create_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this[0].arn, "${aws_s3_bucket.this[0].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  count = local.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  policy = data.aws_iam_policy_document.bucket[0].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# SNS topics: alarms, async success / error notifications
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic" "async_success" {
  count = local.is_async ? 1 : 0

  name              = "${var.name}-async-success"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic" "async_error" {
  count = local.is_async ? 1 : 0

  name              = "${var.name}-async-error"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

################################################################################
# Log group (SageMaker writes /aws/sagemaker/Endpoints/<endpoint name>)
################################################################################

resource "aws_cloudwatch_log_group" "endpoint" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_in_days, default 30 to keep cost down); set 365 or more where compliance requires it.
  count = local.create_endpoint ? 1 : 0

  name              = "/aws/sagemaker/Endpoints/${local.endpoint_name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

################################################################################
# SageMaker model, endpoint configuration, endpoint
################################################################################

resource "aws_sagemaker_model" "this" {
  #checkov:skip=CKV_AWS_370:Isolation is a variable (enable_network_isolation). Off by default because without model_data_url the container downloads the weights from the Hugging Face Hub at start-up; turn it on together with model_data_url.
  count = local.create_endpoint ? 1 : 0

  name                     = "${var.name}-${local.model_hash}"
  execution_role_arn       = aws_iam_role.execution.arn
  enable_network_isolation = var.enable_network_isolation

  primary_container {
    image          = local.image_uri
    mode           = "SingleModel"
    model_data_url = var.model_data_url
    environment    = local.container_environment
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = local.image_uri != null
      error_message = "Set image_tag (with create_ecr_repository = true) or image_uri to deploy the endpoint, or create_endpoint = false for the bootstrap apply."
    }
  }

  depends_on = [aws_iam_role_policy.execution]
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  count = local.create_endpoint ? 1 : 0

  name_prefix = "${var.name}-"
  kms_key_arn = local.endpoint_volume_kms ? local.kms_key_arn : null

  production_variants {
    variant_name           = local.variant_name
    model_name             = aws_sagemaker_model.this[0].name
    instance_type          = var.instance_type
    initial_instance_count = var.initial_instance_count
    initial_variant_weight = 1
    volume_size_in_gb      = var.volume_size_in_gb

    container_startup_health_check_timeout_in_seconds = var.container_startup_health_check_timeout_in_seconds
    model_data_download_timeout_in_seconds            = var.model_data_url == null ? null : var.model_data_download_timeout_in_seconds
  }

  dynamic "async_inference_config" {
    for_each = local.is_async ? [1] : []
    content {
      client_config {
        max_concurrent_invocations_per_instance = var.async_max_concurrent_invocations_per_instance
      }
      output_config {
        s3_output_path  = "s3://${local.bucket_name}/${local.async_output_prefix}"
        s3_failure_path = "s3://${local.bucket_name}/${local.async_failure_prefix}"
        kms_key_id      = local.kms_key_arn
        notification_config {
          success_topic                 = aws_sns_topic.async_success[0].arn
          error_topic                   = aws_sns_topic.async_error[0].arn
          include_inference_response_in = var.async_include_inference_response_in_notification ? ["SUCCESS_NOTIFICATION_TOPIC"] : null
        }
      }
    }
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = !local.is_async || local.create_bucket
      error_message = "endpoint_type = \"async\" needs the module's S3 bucket (create_bucket must not be false)."
    }
  }
}

resource "aws_sagemaker_endpoint" "this" {
  count = local.create_endpoint ? 1 : 0

  name                 = local.endpoint_name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this[0].name

  deployment_config {
    blue_green_update_policy {
      termination_wait_in_seconds          = var.termination_wait_in_seconds
      maximum_execution_timeout_in_seconds = var.deployment_maximum_execution_timeout_in_seconds

      traffic_routing_configuration {
        type                     = "CANARY"
        wait_interval_in_seconds = var.canary_wait_interval_in_seconds

        canary_size {
          type  = var.canary_size_type
          value = var.canary_size_value
        }
      }
    }

    auto_rollback_configuration {
      dynamic "alarms" {
        for_each = local.rollback_alarm_names
        content {
          alarm_name = alarms.value
        }
      }
    }
  }

  tags = local.tags

  # The rollback alarms must exist before SageMaker accepts them.
  depends_on = [aws_cloudwatch_log_group.endpoint, aws_cloudwatch_metric_alarm.this]
}
