# terraform test of the root module (the whole stack) with a mocked AWS provider: no
# credentials, no network. Asserts how the modules are wired (what crosses between them);
# each module's own behaviour is tested in the file named after it.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  image_tag = "0123456789abcdef"
}

run "realtime_defaults" {
  command = apply

  assert {
    condition     = output.endpoint_name == "sd-turbo" && output.endpoint_type == "realtime"
    error_message = "endpoint name must default to the stack name"
  }
  assert {
    condition     = output.image_uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-turbo:0123456789abcdef"
    error_message = "image must be <ecr url>:<image_tag>"
  }
  assert {
    condition = output.container_environment == {
      SDTURBO_MODEL              = "stabilityai/sd-turbo"
      SDTURBO_PORT               = "8080"
      SDTURBO_STARTUP_DEADLINE_S = "840"
      SDTURBO_ENDPOINT_NAME      = "sd-turbo"
      SDTURBO_VARIANT_NAME       = "AllTraffic"
    }
    error_message = "container environment: model, port, start-up deadline (900 s health check - 60 s) and the EMF dimensions, and no batching knob unless one is given (the app's defaults apply)"
  }
  assert {
    condition     = module.endpoint[0].production_variant.initial_instance_count == 2 && module.endpoint[0].production_variant.routing_config[0].routing_strategy == "LEAST_OUTSTANDING_REQUESTS"
    error_message = "with autoscaling a new configuration starts at max_capacity (a release keeps capacity); least-outstanding-requests routing"
  }
  assert {
    condition     = module.endpoint[0].production_variant.instance_type == "ml.g5.xlarge" && module.endpoint[0].production_variant.inference_ami_version == "al2-ami-sagemaker-inference-gpu-3-1"
    error_message = "production default: ml.g5.xlarge on the driver-550 host AMI"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config == null && output.bucket_name == null
    error_message = "a real-time endpoint has no async config and no bucket"
  }
  assert {
    condition     = output.gpus_per_instance == 1 && output.alarm_thresholds["gpu-utilization"] == 90 && output.alarm_thresholds["gpu-memory-utilization"] == 90
    error_message = "one GPU: the GPU alarms fire at the per-GPU threshold"
  }
  assert {
    condition     = toset(keys(output.alarm_names)) == toset(["gpu-utilization", "gpu-memory-utilization", "invocation-5xx-errors", "model-errors", "model-latency-p90", "new-fleet-5xx-rate", "new-fleet-latency-p90"])
    error_message = "unexpected alarm set for real-time"
  }
  assert {
    condition     = toset(output.rollback_alarm_names) == toset(["sd-turbo-new-fleet-5xx-rate", "sd-turbo-new-fleet-latency-p90"])
    error_message = "rollback alarms must be the new fleet's 5xx rate and latency"
  }
  assert {
    condition     = output.dashboard_name == "sd-turbo" && startswith(output.dashboard_url, "https://us-east-1.console.aws.amazon.com/cloudwatch/")
    error_message = "the dashboard must be created"
  }
  assert {
    condition     = output.autoscaling_resource_id == "endpoint/sd-turbo/variant/AllTraffic" && module.autoscaling[0].policy_names == ["sd-turbo-concurrency-target-tracking"]
    error_message = "real-time autoscaling: concurrency target tracking on the variant"
  }
  assert {
    condition     = output.github_actions_role_arn == null && length(module.github_oidc) == 0
    error_message = "GitHub role must be opt-in"
  }
  assert {
    condition     = startswith(output.invoke_endpoint_command, "aws sagemaker-runtime invoke-endpoint --region us-east-1 --endpoint-name sd-turbo ")
    error_message = "invoke command wrong"
  }
  assert {
    condition     = contains(module.execution_role.statement_resources["EcrPull"], "arn:aws:ecr:us-east-1:123456789012:repository/sd-turbo") && !contains(keys(module.execution_role.statement_resources), "AsyncReadInputs")
    error_message = "the execution role pulls from the stack's repository and has no bucket access on a real-time stack"
  }
}

run "four_gpu_instance_type_scales_the_gpu_alarms" {
  command = plan

  variables {
    instance_type = "ml.g5.12xlarge"
  }

  assert {
    condition     = output.gpus_per_instance == 4
    error_message = "ml.g5.12xlarge has 4 GPUs"
  }
  assert {
    condition     = output.alarm_thresholds["gpu-utilization"] == 360 && output.alarm_thresholds["gpu-memory-utilization"] == 360
    error_message = "CloudWatch sums the 4 GPUs (0-400 %): a 90 % per-GPU threshold is 360"
  }
}

# ml.p3.* (V100) is a valid SageMaker type that the table leaves out: the image's CUDA 13 torch
# does not run on Volta.
run "unknown_instance_type_is_refused" {
  command = plan

  variables {
    instance_type = "ml.p3.16xlarge"
  }

  expect_failures = [var.instance_type]
}

run "unknown_instance_type_with_a_gpu_count" {
  command = plan

  variables {
    instance_type     = "ml.p3.16xlarge"
    gpus_per_instance = 8
  }

  assert {
    condition     = output.gpus_per_instance == 8 && output.alarm_thresholds["gpu-utilization"] == 720
    error_message = "gpus_per_instance overrides the table"
  }
}

run "cpu_instance_type" {
  command = plan

  variables {
    instance_type         = "ml.m5.xlarge"
    gpus_per_instance     = 0
    inference_ami_version = null
  }

  assert {
    condition     = !contains(keys(output.alarm_names), "gpu-utilization") && !contains(keys(output.alarm_names), "gpu-memory-utilization")
    error_message = "a CPU instance type has no GPU alarms"
  }
  assert {
    condition     = module.endpoint[0].production_variant.inference_ami_version == null
    error_message = "no host AMI override on a CPU instance type"
  }
}

run "gpu_host_ami_on_a_cpu_instance_type_is_refused" {
  command = plan

  variables {
    instance_type     = "ml.m5.xlarge"
    gpus_per_instance = 0
  }

  expect_failures = [var.inference_ami_version]
}

run "batching_knobs_are_passed_only_when_given" {
  command = plan

  variables {
    endpoint_type        = "async"
    max_batch_size       = 4
    batch_wait_timeout_s = 0.005
  }

  assert {
    condition     = output.container_environment["SDTURBO_MAX_BATCH_SIZE"] == "4" && output.container_environment["SDTURBO_BATCH_WAIT_TIMEOUT_S"] == "0.005"
    error_message = "given batching knobs must reach the container"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config.client_config[0].max_concurrent_invocations_per_instance == 8
    error_message = "async concurrency per instance follows max_batch_size: 2 x 4 x 1 GPU"
  }
}

run "several_models_reach_the_container_as_one_list" {
  command = plan

  variables {
    models = [
      { source = "stabilityai/sd-turbo" },
      { source = "stabilityai/sdxl-turbo", revision = "0123456789abcdef0123456789abcdef01234567", name = "sdxl" },
      { source = "tiny-xl" },
    ]
    model_revision = "b261bac6fd2cf515557d5d0707481eafa0485ec2"
  }

  assert {
    condition     = output.container_environment["SDTURBO_MODELS"] == "stabilityai/sd-turbo,sdxl=stabilityai/sdxl-turbo@0123456789abcdef0123456789abcdef01234567,tiny-xl"
    error_message = "the models list must reach the container as SDTURBO_MODELS, default first"
  }
  assert {
    # The app refuses both forms at once: the one-model variables stay out of the environment.
    condition     = !contains(keys(output.container_environment), "SDTURBO_MODEL") && !contains(keys(output.container_environment), "SDTURBO_MODEL_REVISION")
    error_message = "with models set, SDTURBO_MODEL and SDTURBO_MODEL_REVISION must not be set"
  }
}

run "a_hub_model_without_a_revision_is_refused" {
  command = plan

  variables {
    models = [{ source = "stabilityai/sd-turbo" }, { source = "stabilityai/sdxl-turbo" }]
  }

  expect_failures = [var.models]
}

run "two_models_with_one_name_are_refused" {
  command = plan

  variables {
    models = [{ source = "tiny" }, { source = "/opt/ml/model", name = "tiny" }]
  }

  expect_failures = [var.models]
}

run "async_scale_to_zero" {
  command = apply

  variables {
    endpoint_type = "async"
    instance_type = "ml.g5.12xlarge"
  }

  assert {
    condition     = module.endpoint[0].async_inference_config.output_config[0].s3_output_path == "s3://${output.bucket_name}/async-outputs/" && output.async_output_s3_uri == "s3://${output.bucket_name}/async-outputs/"
    error_message = "async output path wrong"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config.output_config[0].s3_failure_path == "s3://${output.bucket_name}/async-failures/"
    error_message = "async failure path wrong"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config.output_config[0].notification_config[0].success_topic == output.async_success_topic_arn && module.endpoint[0].async_inference_config.output_config[0].notification_config[0].error_topic == output.async_error_topic_arn
    error_message = "the endpoint must notify the stack's async topics"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config.output_config[0].kms_key_id == output.kms_key_arn
    error_message = "async output must be encrypted with the stack key"
  }
  assert {
    condition     = module.endpoint[0].async_inference_config.client_config[0].max_concurrent_invocations_per_instance == 64
    error_message = "async concurrency per instance defaults to 2 x the app's max_batch_size (8) x 4 GPUs"
  }
  assert {
    condition     = module.autoscaling[0].policy_names == ["sd-turbo-backlog-target-tracking", "sd-turbo-has-backlog-without-capacity"]
    error_message = "async autoscaling: backlog tracking and the 0 -> 1 step policy"
  }
  assert {
    condition     = contains(keys(output.alarm_names), "async-backlog-age")
    error_message = "backlog age alarm missing"
  }
  assert {
    condition     = module.execution_role.statement_resources["AsyncReadInputs"] == toset(["arn:aws:s3:::sd-turbo-123456789012-us-east-1/async-inputs/*"])
    error_message = "the execution role reads only the async input prefix"
  }
  assert {
    condition     = toset(module.execution_role.statement_resources["AsyncNotifications"]) == toset([output.async_success_topic_arn, output.async_error_topic_arn])
    error_message = "the execution role publishes to the async topics"
  }
  assert {
    condition     = strcontains(output.invoke_endpoint_command, "aws sagemaker-runtime invoke-endpoint-async")
    error_message = "async invoke command wrong"
  }
}

run "async_needs_the_bucket" {
  command = plan

  variables {
    endpoint_type = "async"
    create_bucket = false
  }

  expect_failures = [var.create_bucket]
}

run "invalid_endpoint_type" {
  command = plan

  variables {
    endpoint_type = "serverless"
  }

  expect_failures = [var.endpoint_type]
}

run "bootstrap_without_endpoint" {
  command = plan

  variables {
    image_tag       = null
    create_endpoint = false
  }

  assert {
    condition     = length(module.endpoint) == 0 && length(module.monitoring) == 0 && length(module.autoscaling) == 0 && output.endpoint_name == null && output.dashboard_name == null
    error_message = "bootstrap must not create the endpoint, its alarms or its dashboard"
  }
  assert {
    condition     = length(module.ecr) == 1 && length(module.kms) == 1
    error_message = "bootstrap must create the ECR repository and the key"
  }
}

run "github_oidc_role" {
  command = apply

  variables {
    create_github_oidc_role = true
    github_repository       = "acme/sd-turbo-serve"
  }

  assert {
    condition     = output.github_actions_role_arn == module.github_oidc[0].role_arn && output.github_actions_role_arn != null
    error_message = "github_actions_role_arn output missing"
  }
  assert {
    condition = toset(module.github_oidc[0].trusted_subjects) == toset([
      "repo:acme/sd-turbo-serve:ref:refs/heads/main",
      "repo:acme/sd-turbo-serve:environment:production",
    ])
    error_message = "trust must be pinned to the repository's main branch and production environment"
  }
}

run "github_oidc_role_needs_a_repository" {
  command = plan

  variables {
    create_github_oidc_role = true
  }

  expect_failures = [var.github_repository]
}

run "external_ecr_image_is_pullable" {
  command = plan

  variables {
    image_tag = null
    image_uri = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shared/sd-turbo:v1"
  }

  assert {
    condition     = output.image_uri == "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shared/sd-turbo:v1"
    error_message = "image_uri must override image_tag"
  }
  assert {
    condition     = contains(module.execution_role.statement_resources["EcrPull"], "arn:aws:ecr:eu-west-1:210987654321:repository/shared/sd-turbo")
    error_message = "the execution role must be able to pull an image_uri from another ECR repository"
  }
}

run "weights_from_s3_serve_the_model_directory_in_a_private_vpc" {
  command = plan

  variables {
    model_data_url = "s3://acme-models/sd-turbo/model.tar.gz"
    create_vpc     = true
    min_capacity   = 2
    max_capacity   = 3
  }

  assert {
    condition     = !contains(keys(output.container_environment), "SDTURBO_MODEL") && output.container_environment["SDTURBO_OFFLINE"] == "1"
    error_message = "with model_data_url no Hub id is set: the container serves /opt/ml/model, offline"
  }
  assert {
    condition     = module.endpoint[0].enable_network_isolation && length(module.network) == 1
    error_message = "weights given: network isolation on by default; the VPC is created"
  }
  assert {
    condition     = contains(keys(module.execution_role.statement_resources), "VpcNetworkInterfaces")
    error_message = "in a VPC the execution role may manage SageMaker's network interfaces"
  }
  assert {
    condition     = module.endpoint[0].production_variant.initial_instance_count == 3
    error_message = "a release starts the new fleet at max_capacity"
  }
}

run "isolation_without_weights_is_refused" {
  command = plan

  variables {
    enable_network_isolation = true
  }

  expect_failures = [var.enable_network_isolation]
}

run "a_vpc_without_weights_is_refused" {
  command = plan

  variables {
    create_vpc = true
  }

  expect_failures = [var.create_vpc]
}

run "a_canary_of_a_one_instance_fleet_is_refused" {
  command = plan

  variables {
    max_capacity = 1
  }

  expect_failures = [var.deployment_traffic_routing]
}

run "one_instance_all_at_once_with_a_health_gate" {
  command = plan

  variables {
    max_capacity                = 1
    deployment_traffic_routing  = "ALL_AT_ONCE"
    termination_wait_in_seconds = 600
  }

  assert {
    condition     = module.endpoint[0].deployment_traffic_routing == "ALL_AT_ONCE"
    error_message = "one instance: all at once, gated by the rollback alarms during the termination wait"
  }
}
