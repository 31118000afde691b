# terraform test of modules/sagemaker-endpoint (mocked AWS provider): the production variant,
# the host AMI, volume encryption, the blue/green canary with rollback alarms, async config.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                   = "sd-turbo"
  execution_role_arn     = "arn:aws:iam::123456789012:role/sd-turbo-sagemaker-execution"
  image_uri              = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-turbo:0123456789abcdef"
  instance_type          = "ml.g5.xlarge"
  kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  environment            = { SDTURBO_MODEL = "stabilityai/sd-turbo" }
  rollback_alarm_names   = ["sd-turbo-new-fleet-5xx-rate", "sd-turbo-new-fleet-latency-p90"]
  initial_instance_count = 3
  routing_strategy       = "LEAST_OUTSTANDING_REQUESTS"
}

run "realtime_variant_and_canary" {
  command = apply

  module {
    source = "./modules/sagemaker-endpoint"
  }

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.production_variants[0].inference_ami_version == "al2-ami-sagemaker-inference-gpu-3-1"
    error_message = "the host AMI defaults to the newest one AWS provider 5.100 accepts (driver 550)"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.production_variants[0].container_startup_health_check_timeout_in_seconds == 900 && aws_sagemaker_endpoint_configuration.this.production_variants[0].model_data_download_timeout_in_seconds == null
    error_message = "startup health check timeout 900 s; no download timeout without model_data_url"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.kms_key_arn == null
    error_message = "g5 has local NVMe storage: SageMaker rejects a volume KMS key, so none may be set"
  }
  assert {
    condition     = length(aws_sagemaker_endpoint_configuration.this.async_inference_config) == 0
    error_message = "no async config without async_inference"
  }
  assert {
    condition     = aws_sagemaker_model.this.primary_container[0].image == var.image_uri && aws_sagemaker_model.this.primary_container[0].environment == var.environment
    error_message = "the model runs the image with the given environment"
  }
  assert {
    condition     = startswith(aws_sagemaker_model.this.name, "sd-turbo-") && length(aws_sagemaker_model.this.name) == length("sd-turbo-") + 10
    error_message = "model name is <name>-<10-char hash of the container definition>"
  }
  assert {
    condition     = aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].type == "CANARY" && aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].canary_size[0].type == "INSTANCE_COUNT" && aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].canary_size[0].value == 1
    error_message = "deployment must be a one-instance canary"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.production_variants[0].initial_instance_count == 3 && aws_sagemaker_endpoint_configuration.this.production_variants[0].routing_config[0].routing_strategy == "LEAST_OUTSTANDING_REQUESTS"
    error_message = "the variant starts at the given count and routes to the least busy instance"
  }
  assert {
    condition     = length(aws_sagemaker_model.this.vpc_config) == 0
    error_message = "no VPC unless given"
  }
  assert {
    condition     = toset([for a in aws_sagemaker_endpoint.this.deployment_config[0].auto_rollback_configuration[0].alarms : a.alarm_name]) == toset(var.rollback_alarm_names)
    error_message = "the rollback alarms must be attached to the deployment"
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/aws/sagemaker/Endpoints/sd-turbo" && aws_cloudwatch_log_group.this.kms_key_id == var.kms_key_arn && aws_cloudwatch_log_group.this.retention_in_days == 30
    error_message = "log group: SageMaker's name, the stack key, 30 days"
  }
}

run "non_nvme_instance_encrypts_volume" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    instance_type         = "ml.m5.xlarge"
    inference_ami_version = null
  }

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.kms_key_arn == var.kms_key_arn
    error_message = "instances without local NVMe must get a KMS-encrypted volume"
  }
}

# The driver-580 AMI exists, but AWS provider 5.100 rejects it: the variable says so at plan
# time instead of the provider's longer error (docs/infra.md: it needs a 6.x provider).
run "host_ami_newer_than_the_provider_is_refused" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    inference_ami_version = "al2023-ami-sagemaker-inference-gpu-4-1"
  }

  expect_failures = [var.inference_ami_version]
}

run "misspelt_host_ami_is_refused" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    inference_ami_version = "al2-ami-sagemaker-inference-gpu-3"
  }

  expect_failures = [var.inference_ami_version]
}

run "async_config_and_another_host_ami" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    inference_ami_version = "al2-ami-sagemaker-inference-gpu-2-1"
    async_inference = {
      s3_output_path                          = "s3://bucket/async-outputs/"
      s3_failure_path                         = "s3://bucket/async-failures/"
      success_topic_arn                       = "arn:aws:sns:us-east-1:123456789012:sd-turbo-async-success"
      error_topic_arn                         = "arn:aws:sns:us-east-1:123456789012:sd-turbo-async-error"
      max_concurrent_invocations_per_instance = 16
    }
  }

  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.async_inference_config[0].output_config[0].kms_key_id == var.kms_key_arn && aws_sagemaker_endpoint_configuration.this.async_inference_config[0].client_config[0].max_concurrent_invocations_per_instance == 16
    error_message = "async output must be KMS-encrypted and the concurrency passed through"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.async_inference_config[0].output_config[0].notification_config[0].include_inference_response_in == null
    error_message = "SNS success notifications carry no image by default (256 KB limit)"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.production_variants[0].inference_ami_version == "al2-ami-sagemaker-inference-gpu-2-1"
    error_message = "a chosen host AMI must reach the variant"
  }
}

run "endpoint_needs_an_image" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    image_uri = null
  }

  expect_failures = [aws_sagemaker_model.this]
}

run "all_at_once_in_a_vpc_with_uncompressed_weights" {
  command = plan

  module {
    source = "./modules/sagemaker-endpoint"
  }

  variables {
    initial_instance_count   = 1
    environment              = { SDTURBO_OFFLINE = "1" }
    model_data_source        = "s3://acme-models/sd-turbo/"
    enable_network_isolation = true
    vpc_config = {
      subnet_ids         = ["subnet-a", "subnet-b"]
      security_group_ids = ["sg-model"]
    }
    deployment = { traffic_routing = "ALL_AT_ONCE", termination_wait_in_seconds = 600 }
  }

  assert {
    condition     = aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].type == "ALL_AT_ONCE" && length(aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].traffic_routing_configuration[0].canary_size) == 0 && aws_sagemaker_endpoint.this.deployment_config[0].blue_green_update_policy[0].termination_wait_in_seconds == 600
    error_message = "all at once: no canary, the rollback alarms watched during the termination wait"
  }
  assert {
    condition     = aws_sagemaker_model.this.vpc_config[0].subnets == toset(["subnet-a", "subnet-b"]) && aws_sagemaker_model.this.enable_network_isolation
    error_message = "the model runs in the VPC's two subnets with network isolation"
  }
  assert {
    condition     = aws_sagemaker_model.this.primary_container[0].model_data_source[0].s3_data_source[0].s3_uri == "s3://acme-models/sd-turbo/" && aws_sagemaker_model.this.primary_container[0].model_data_source[0].s3_data_source[0].compression_type == "None" && aws_sagemaker_model.this.primary_container[0].model_data_source[0].s3_data_source[0].s3_data_type == "S3Prefix"
    error_message = "uncompressed weights come as an S3 prefix"
  }
  assert {
    condition     = aws_sagemaker_endpoint_configuration.this.production_variants[0].model_data_download_timeout_in_seconds == 1200
    error_message = "the download timeout applies to model_data_source too"
  }
}
