################################################################################
# The SD-Turbo serving stack: one module per concern, wired together here.
#
#   kms               customer-managed key (unless kms_key_arn is given)
#   ecr               image repository
#   async_bucket      S3 bucket of async requests/responses (async endpoints)
#   topics            SNS: alarms, async success / error
#   execution_role    what the container may do
#   endpoint          SageMaker model, endpoint configuration, endpoint, log group
#   monitoring        alarms (also the deployment rollback alarms) and the dashboard
#   autoscaling       Application Auto Scaling of the variant
#   github_oidc       GitHub Actions deploy role (optional)
#   network           private VPC in two zones with VPC endpoints (optional, create_vpc)
################################################################################

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  is_async       = var.endpoint_type == "async"
  create_bucket  = coalesce(var.create_bucket, local.is_async)
  endpoint_name  = var.name
  log_group_name = "/aws/sagemaker/Endpoints/${local.endpoint_name}"

  kms_key_arn = var.kms_key_arn == null ? module.kms[0].key_arn : var.kms_key_arn

  image_uri = (
    var.image_uri != null ? var.image_uri :
    var.create_ecr_repository && var.image_tag != null ? "${module.ecr[0].repository_url}:${var.image_tag}" :
    null
  )

  # An image_uri in another ECR repository (e.g. a shared registry) must be pullable too.
  external_image_ecr = var.image_uri == null ? [] : regexall("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.image_uri)
  stack_ecr_arns     = var.create_ecr_repository ? [module.ecr[0].repository_arn] : []
  pull_ecr_arns = concat(
    local.stack_ecr_arns,
    [for m in local.external_image_ecr : "arn:${local.partition}:ecr:${m[1]}:${m[0]}:repository/${m[2]}"],
  )

  bucket = local.create_bucket ? {
    id       = module.async_bucket[0].bucket_id
    arn      = module.async_bucket[0].bucket_arn
    prefixes = module.async_bucket[0].prefixes
  } : null

  # Where the weights come from. Given weights land in /opt/ml/model, which the entrypoint
  # serves when SDTURBO_MODEL names nothing else: so no Hub id is set then (unless model_id
  # names one explicitly), and the container needs no network.
  weights_given     = var.model_data_url != null || var.model_data_source != null || var.weights_in_image
  model_id          = var.model_id != null ? var.model_id : local.weights_given ? null : "stabilityai/sd-turbo"
  network_isolation = coalesce(var.enable_network_isolation, local.weights_given)
  # One start-up budget: SageMaker's health-check timeout; the app gives up a margin earlier
  # so its own reason reaches the log (serve_app/settings.py's default is this for 900 s).
  startup_deadline_s = var.container_startup_health_check_timeout_in_seconds - var.startup_deadline_margin_s

  # The container's SDTURBO_* environment. Batching knobs are set only when given, so that
  # the app's own defaults apply otherwise (one value per knob, in serve_app/settings.py).
  container_environment = merge(
    {
      SDTURBO_PORT               = "8080"
      SDTURBO_STARTUP_DEADLINE_S = tostring(local.startup_deadline_s)
      # Dimensions of the app's CloudWatch EMF metrics, matching the endpoint's own metrics.
      SDTURBO_ENDPOINT_NAME = local.endpoint_name
      SDTURBO_VARIANT_NAME  = var.variant_name
    },
    # One model (model_id, or the model directory) or several (models: SDTURBO_MODELS).
    local.model_id == null || var.models != null ? {} : { SDTURBO_MODEL = local.model_id },
    var.models == null ? {} : {
      SDTURBO_MODELS = join(",", [
        for m in var.models : "${m.name == null ? "" : "${m.name}="}${m.source}${m.revision == null ? "" : "@${m.revision}"}"
      ])
    },
    # Nothing is reachable under network isolation: never try the Hub (no connection timeouts).
    local.network_isolation ? { SDTURBO_OFFLINE = "1" } : {},
    var.model_revision == null || var.models != null ? {} : { SDTURBO_MODEL_REVISION = var.model_revision },
    var.max_batch_size == null ? {} : { SDTURBO_MAX_BATCH_SIZE = tostring(var.max_batch_size) },
    var.batch_wait_timeout_s == null ? {} : { SDTURBO_BATCH_WAIT_TIMEOUT_S = tostring(var.batch_wait_timeout_s) },
    var.container_environment,
  )

  # Async: let SageMaker hand each instance as many requests as its model replicas (one per
  # GPU) hold at once: 2 x max_batch_size each, one batch running while the next one forms.
  # app_default_max_batch_size mirrors the app's CUDA default (DEVICE_DEFAULTS in serve_app/settings.py);
  # tests/deployments/test_batching_knobs.py fails if they differ.
  app_default_max_batch_size = 8
  async_max_concurrent = coalesce(
    var.async_max_concurrent_invocations_per_instance,
    2 * coalesce(var.max_batch_size, local.app_default_max_batch_size) * max(local.gpus_per_instance, 1),
  )

  min_capacity = coalesce(var.min_capacity, local.is_async ? 0 : 1)

  # Capacity across releases. Every release is a new endpoint configuration, and SageMaker
  # starts its (green) fleet at the configuration's InitialInstanceCount: the count autoscaling
  # had reached is not carried over (UpdateEndpoint's RetainAllVariantProperties would, but
  # hashicorp/aws 5.100's aws_sagemaker_endpoint cannot send it). So with autoscaling each
  # configuration starts at max_capacity: a release never lowers capacity below what
  # autoscaling may have reached, and target tracking scales in afterwards (docs/infra.md).
  release_instance_count = var.enable_autoscaling ? max(var.max_capacity, var.initial_instance_count) : var.initial_instance_count

  # Target tracking on concurrency needs no per-minute invocation rate; its default target is
  # what one model replica per GPU holds at once: one batch in flight (tune with loadtest/).
  realtime_target_value = coalesce(
    var.realtime_target_value,
    var.realtime_scaling_metric == "concurrency" ? coalesce(var.max_batch_size, local.app_default_max_batch_size) * max(local.gpus_per_instance, 1) : 60,
  )

  tags = merge({ "sd-turbo-serve:stack" = var.name }, var.tags)
}

module "network" {
  source = "./modules/network"
  count  = var.create_vpc ? 1 : 0

  name               = var.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  tags               = local.tags
}

locals {
  vpc_config = var.create_vpc ? {
    subnet_ids         = module.network[0].subnet_ids
    security_group_ids = [module.network[0].model_security_group_id]
  } : null
}

module "kms" {
  source = "./modules/kms"
  count  = var.kms_key_arn == null ? 1 : 0

  alias                   = var.name
  description             = "${var.name}: SageMaker endpoint, async bucket, SNS topics, logs and ECR"
  log_group_name_prefix   = local.log_group_name
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = local.tags
}

module "ecr" {
  source = "./modules/ecr"
  count  = var.create_ecr_repository ? 1 : 0

  name            = coalesce(var.ecr_repository_name, var.name)
  kms_key_arn     = local.kms_key_arn
  max_image_count = var.ecr_max_image_count
  force_delete    = var.ecr_force_delete
  tags            = local.tags
}

module "async_bucket" {
  source = "./modules/async-bucket"
  count  = local.create_bucket ? 1 : 0

  bucket_name            = coalesce(var.bucket_name, "${var.name}-${local.account_id}-${local.region}")
  kms_key_arn            = local.kms_key_arn
  object_expiration_days = var.async_object_expiration_days
  force_destroy          = var.bucket_force_destroy
  tags                   = local.tags
}

module "topics" {
  source = "./modules/sns-topic"
  for_each = merge(
    { alarms = var.alarm_email_endpoints },
    local.is_async ? { async-success = [], async-error = [] } : {},
  )

  name            = "${var.name}-${each.key}"
  kms_key_arn     = local.kms_key_arn
  email_endpoints = each.value
  tags            = local.tags
}

module "execution_role" {
  source = "./modules/execution-role"

  name                = "${var.name}-sagemaker-execution"
  description         = "SageMaker execution role of the ${var.name} endpoint"
  ecr_repository_arns = local.pull_ecr_arns
  s3_read_arns        = local.bucket == null ? [] : ["${local.bucket.arn}/${local.bucket.prefixes.input}*"]
  s3_write_arns       = local.bucket == null ? [] : ["${local.bucket.arn}/${local.bucket.prefixes.output}*", "${local.bucket.arn}/${local.bucket.prefixes.failure}*"]
  model_data_url      = var.model_data_url
  model_data_source   = var.model_data_source
  in_vpc              = var.create_vpc
  kms_key_arn         = local.kms_key_arn
  log_group_name      = local.log_group_name
  metric_namespaces   = ["/aws/sagemaker/Endpoints", "AWS/SageMaker", "SDTurbo*"]
  sns_publish_topic_arns = local.is_async ? [
    module.topics["async-success"].arn, module.topics["async-error"].arn,
  ] : []
  tags = local.tags
}

module "monitoring" {
  source = "./modules/monitoring"
  count  = var.create_endpoint ? 1 : 0

  name                 = var.name
  endpoint_name        = local.endpoint_name
  endpoint_config_name = module.endpoint[0].endpoint_config_name
  variant_name         = var.variant_name
  async                = local.is_async
  instance_type        = var.instance_type
  gpus_per_instance    = local.gpus_per_instance
  alarm_topic_arn      = module.topics["alarms"].arn

  alarm_period_seconds                = var.alarm_period_seconds
  alarm_evaluation_periods            = var.alarm_evaluation_periods
  gpu_utilization_threshold           = var.gpu_utilization_threshold
  gpu_memory_utilization_threshold    = var.gpu_memory_utilization_threshold
  error_5xx_threshold                 = var.error_5xx_threshold
  rollback_5xx_rate_threshold         = var.rollback_5xx_rate_threshold
  model_error_threshold               = var.model_error_threshold
  model_latency_threshold_ms          = var.model_latency_threshold_ms
  async_backlog_age_threshold_seconds = var.async_backlog_age_threshold_seconds

  create_dashboard            = var.create_dashboard
  dashboard_period_seconds    = var.dashboard_period_seconds
  instance_price_usd_per_hour = var.instance_price_usd_per_hour
  min_capacity                = var.enable_autoscaling ? local.min_capacity : null
  max_capacity                = var.enable_autoscaling ? var.max_capacity : null

  tags = local.tags
}

module "endpoint" {
  source = "./modules/sagemaker-endpoint"
  count  = var.create_endpoint ? 1 : 0

  name                     = local.endpoint_name
  execution_role_arn       = module.execution_role.arn
  image_uri                = local.image_uri
  model_data_url           = var.model_data_url
  model_data_source        = var.model_data_source
  environment              = local.container_environment
  enable_network_isolation = local.network_isolation
  vpc_config               = local.vpc_config

  variant_name                                      = var.variant_name
  instance_type                                     = var.instance_type
  initial_instance_count                            = local.release_instance_count
  routing_strategy                                  = local.is_async ? null : var.routing_strategy
  volume_size_in_gb                                 = var.volume_size_in_gb
  inference_ami_version                             = var.inference_ami_version
  container_startup_health_check_timeout_in_seconds = var.container_startup_health_check_timeout_in_seconds
  model_data_download_timeout_in_seconds            = var.model_data_download_timeout_in_seconds
  kms_key_arn                                       = local.kms_key_arn
  volume_encryption                                 = var.endpoint_volume_encryption

  async_inference = local.is_async ? {
    s3_output_path                           = "s3://${local.bucket.id}/${local.bucket.prefixes.output}"
    s3_failure_path                          = "s3://${local.bucket.id}/${local.bucket.prefixes.failure}"
    success_topic_arn                        = module.topics["async-success"].arn
    error_topic_arn                          = module.topics["async-error"].arn
    max_concurrent_invocations_per_instance  = local.async_max_concurrent
    include_response_in_success_notification = var.async_include_inference_response_in_notification
  } : null

  deployment = {
    traffic_routing                      = var.deployment_traffic_routing
    canary_size_type                     = var.canary_size_type
    canary_size_value                    = var.canary_size_value
    canary_wait_interval_in_seconds      = var.canary_wait_interval_in_seconds
    termination_wait_in_seconds          = var.termination_wait_in_seconds
    maximum_execution_timeout_in_seconds = var.deployment_maximum_execution_timeout_in_seconds
  }
  # Read from the alarm resources, so the alarms exist before SageMaker is told about them.
  rollback_alarm_names = module.monitoring[0].rollback_alarm_names

  log_retention_in_days = var.log_retention_in_days
  tags                  = local.tags
}

module "autoscaling" {
  source = "./modules/autoscaling"
  count  = var.create_endpoint && var.enable_autoscaling ? 1 : 0

  name                              = var.name
  endpoint_name                     = module.endpoint[0].endpoint_name
  variant_name                      = var.variant_name
  async                             = local.is_async
  min_capacity                      = local.min_capacity
  max_capacity                      = var.max_capacity
  realtime_scaling_metric           = var.realtime_scaling_metric
  realtime_target_value             = local.realtime_target_value
  async_backlog_target_per_instance = var.async_backlog_target_per_instance
  scale_in_cooldown                 = var.scale_in_cooldown
  scale_out_cooldown                = var.scale_out_cooldown
  tags                              = local.tags
}

module "github_oidc" {
  source = "./modules/github-oidc"
  count  = var.create_github_oidc_role ? 1 : 0

  name               = var.name
  github_repository  = var.github_repository
  github_branch      = var.github_branch
  github_environment = var.github_environment
  oidc_provider_arn  = var.github_oidc_provider_arn

  subject_format             = var.github_subject_format
  github_repository_owner_id = var.github_repository_owner_id
  github_repository_id       = var.github_repository_id

  endpoint_name       = local.endpoint_name
  ecr_repository_arns = local.stack_ecr_arns
  execution_role_arn  = module.execution_role.arn
  kms_key_arn         = local.kms_key_arn
  log_group_name      = local.log_group_name
  manages_vpc         = var.create_vpc
  async_bucket        = local.bucket == null ? null : { arn = local.bucket.arn, prefixes = values(local.bucket.prefixes) }

  terraform_state_bucket     = var.terraform_state_bucket
  terraform_state_key_prefix = var.terraform_state_key_prefix
  terraform_lock_table       = var.terraform_lock_table
  tags                       = local.tags
}
