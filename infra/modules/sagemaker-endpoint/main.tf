################################################################################
# SageMaker model -> endpoint configuration -> endpoint, and the endpoint's log group.
#
# Every change of the container (image, environment, model data) yields a new model name and
# a new endpoint configuration (create_before_destroy); the endpoint then moves to it by a
# blue/green deployment (canary, or all at once for a one-instance fleet) that SageMaker rolls
# back when a rollback alarm (the new fleet's 5xx rate or latency) fires.
################################################################################

locals {
  is_async = var.async_inference != null

  # Instance families with local NVMe instance storage: SageMaker rejects a KMS key for the
  # ML storage volume there (the instance store is hardware-encrypted).
  instance_has_local_nvme = can(regex("^ml\\.([a-z]+[0-9]+[a-z]*d[a-z]*|g5|g6|g6e|gr6|p5|p5e|p5en)\\.", var.instance_type))
  volume_kms              = coalesce(var.volume_encryption, !local.instance_has_local_nvme)

  # A new model name whenever the container definition changes, so the endpoint configuration
  # (and therefore the endpoint, through a blue/green deployment) follows.
  model_hash = substr(sha1(jsonencode({
    image = var.image_uri
    data  = var.model_data_url
    src   = var.model_data_source
    env   = var.environment
    iso   = var.enable_network_isolation
    vpc   = var.vpc_config
  })), 0, 10)
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_in_days, default 30 to keep cost down); set 365 or more where compliance requires it.
  name              = "/aws/sagemaker/Endpoints/${var.name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sagemaker_model" "this" {
  #checkov:skip=CKV_AWS_370:Isolation is on whenever the weights are given (model_data_url, model_data_source, weights_in_image; infra/main.tf); off only for the Hub download, which needs the network.
  name                     = "${var.name}-${local.model_hash}"
  execution_role_arn       = var.execution_role_arn
  enable_network_isolation = var.enable_network_isolation

  primary_container {
    image          = var.image_uri
    mode           = "SingleModel"
    model_data_url = var.model_data_url
    environment    = var.environment

    dynamic "model_data_source" {
      for_each = var.model_data_source == null ? [] : [var.model_data_source]
      content {
        s3_data_source {
          s3_uri           = model_data_source.value
          s3_data_type     = "S3Prefix"
          compression_type = "None"
        }
      }
    }
  }

  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]
    content {
      subnets            = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.image_uri != null
      error_message = "Set image_tag (with create_ecr_repository = true) or image_uri to deploy the endpoint, or create_endpoint = false for the bootstrap apply."
    }
  }
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  name_prefix = "${var.name}-"
  kms_key_arn = local.volume_kms ? var.kms_key_arn : null

  production_variants {
    variant_name           = var.variant_name
    model_name             = aws_sagemaker_model.this.name
    instance_type          = var.instance_type
    initial_instance_count = var.initial_instance_count
    initial_variant_weight = 1
    volume_size_in_gb      = var.volume_size_in_gb
    inference_ami_version  = var.inference_ami_version

    container_startup_health_check_timeout_in_seconds = var.container_startup_health_check_timeout_in_seconds

    dynamic "routing_config" {
      for_each = var.routing_strategy == null ? [] : [var.routing_strategy]
      content {
        routing_strategy = routing_config.value
      }
    }
    model_data_download_timeout_in_seconds = var.model_data_url == null && var.model_data_source == null ? null : var.model_data_download_timeout_in_seconds
  }

  dynamic "async_inference_config" {
    for_each = local.is_async ? [var.async_inference] : []
    content {
      client_config {
        max_concurrent_invocations_per_instance = async_inference_config.value.max_concurrent_invocations_per_instance
      }
      output_config {
        s3_output_path  = async_inference_config.value.s3_output_path
        s3_failure_path = async_inference_config.value.s3_failure_path
        kms_key_id      = var.kms_key_arn
        notification_config {
          success_topic                 = async_inference_config.value.success_topic_arn
          error_topic                   = async_inference_config.value.error_topic_arn
          include_inference_response_in = async_inference_config.value.include_response_in_success_notification ? ["SUCCESS_NOTIFICATION_TOPIC"] : null
        }
      }
    }
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint" "this" {
  name                 = var.name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this.name

  deployment_config {
    blue_green_update_policy {
      termination_wait_in_seconds          = var.deployment.termination_wait_in_seconds
      maximum_execution_timeout_in_seconds = var.deployment.maximum_execution_timeout_in_seconds

      traffic_routing_configuration {
        type                     = var.deployment.traffic_routing
        wait_interval_in_seconds = var.deployment.traffic_routing == "CANARY" ? var.deployment.canary_wait_interval_in_seconds : 0

        dynamic "canary_size" {
          for_each = var.deployment.traffic_routing == "CANARY" ? [1] : []
          content {
            type  = var.deployment.canary_size_type
            value = var.deployment.canary_size_value
          }
        }
      }
    }

    auto_rollback_configuration {
      dynamic "alarms" {
        for_each = var.rollback_alarm_names
        content {
          alarm_name = alarms.value
        }
      }
    }
  }

  tags = var.tags

  # SageMaker writes the endpoint's logs into this group: it must exist (with its retention and
  # key) before the first instance starts.
  depends_on = [aws_cloudwatch_log_group.this]
}
