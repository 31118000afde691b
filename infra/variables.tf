# The stack's interface. Values that only one module uses are validated there (the error names
# that module's variable); what decides the composition is validated here.

################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix for every resource (endpoint, model, roles, alarms, topics, dashboard). Lowercase letters, digits and hyphens."
  type        = string
  default     = "sd-turbo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,39}$", var.name))
    error_message = "name must be 2-40 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "endpoint_type" {
  description = "Inference mode: \"realtime\" (synchronous InvokeEndpoint, target-tracking autoscaling) or \"async\" (InvokeEndpointAsync with S3 input/output, SNS notifications and scale to zero)."
  type        = string
  default     = "realtime"

  validation {
    condition     = contains(["realtime", "async"], var.endpoint_type)
    error_message = "endpoint_type must be \"realtime\" or \"async\"."
  }
}

variable "create_endpoint" {
  description = "Create the SageMaker model, endpoint configuration, endpoint, autoscaling, alarms and dashboard. false for the bootstrap apply that only creates the ECR repository, bucket, KMS key and GitHub OIDC role (before the first image is pushed)."
  type        = bool
  default     = true
}

################################################################################
# Container image (ECR)
################################################################################

variable "create_ecr_repository" {
  description = "Create the ECR repository the image is pushed to. When false, set image_uri to an image in an existing registry."
  type        = bool
  default     = true
}

variable "ecr_repository_name" {
  description = "Name of the ECR repository. Null: var.name."
  type        = string
  default     = null
}

variable "ecr_max_image_count" {
  description = "ECR lifecycle policy: keep at most this many images. Untagged images expire after 7 days."
  type        = number
  default     = 30
}

variable "ecr_force_delete" {
  description = "Let terraform destroy delete the ECR repository while it still holds images. Keep false in production."
  type        = bool
  default     = false
}

variable "image_tag" {
  description = "Tag of the image in the stack's ECR repository (the release workflow passes the commit SHA)."
  type        = string
  default     = null
}

variable "image_uri" {
  description = "Full image URI, overriding image_tag (e.g. an image in a shared registry; the execution role gets pull access to its ECR repository)."
  type        = string
  default     = null
}

################################################################################
# Model and serving settings (SDTURBO_* environment of the container)
################################################################################

variable "model_id" {
  description = "SDTURBO_MODEL: a Hugging Face Hub id or a directory in the image. Null (default): with weights given (model_data_url, model_data_source or weights_in_image) none is set and the container serves /opt/ml/model; without them stabilityai/sd-turbo from the Hub."
  type        = string
  default     = null
}

variable "model_revision" {
  description = "SDTURBO_MODEL_REVISION (pin a commit hash in production). Null: the app's own pinned default."
  type        = string
  default     = null
}

variable "models" {
  description = "SDTURBO_MODELS: several models behind the one endpoint, chosen per request by its `model` field, the first the default. Each: source (Hub id, a directory in the image, /opt/ml/model, or a preset such as tiny-xl), revision (a commit sha, required for a Hub id other than stabilityai/sd-turbo), optional name (default: the source's last path component). Null: the one model of model_id / model_revision."
  type = list(object({
    source   = string
    revision = optional(string)
    name     = optional(string)
  }))
  default = null

  validation {
    condition     = var.models == null || try(length(var.models) >= 1, false)
    error_message = "models, when set, lists at least one model (the first is the default)."
  }
  validation {
    # The app's entry syntax is name=source@revision, comma-separated: none of those characters may appear.
    condition = var.models == null || alltrue([
      for m in coalesce(var.models, []) : can(regex("^[^,=@ ]+$", m.source)) && (m.revision == null || can(regex("^[0-9a-f]{40}$", m.revision)))
    ])
    error_message = "Each model's source is a Hub id, path or preset without ',', '=', '@' or spaces; a revision is a 40-hex-digit commit sha."
  }
  validation {
    condition = var.models == null || alltrue([
      for m in coalesce(var.models, []) : m.name == null || can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", m.name))
    ])
    error_message = "A model's name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
  validation {
    condition = var.models == null || length(distinct([
      for m in coalesce(var.models, []) : coalesce(m.name, element(split("/", m.source), length(split("/", m.source)) - 1))
    ])) == length(coalesce(var.models, []))
    error_message = "Two models would have the same name; give them distinct names."
  }
  validation {
    # A Hub id (owner/name, not a path) is served at a pinned commit: a moving branch never is.
    condition = var.models == null || alltrue([
      for m in coalesce(var.models, []) : m.revision != null || m.source == "stabilityai/sd-turbo" || !can(regex("^[A-Za-z0-9][^/]*/[^/]+$", m.source))
    ])
    error_message = "A Hub id other than stabilityai/sd-turbo needs its revision (a commit sha)."
  }
}

variable "model_data_url" {
  description = "s3:// URL of a model.tar.gz SageMaker unpacks into /opt/ml/model (pre-packaged weights, no Hub download at start)."
  type        = string
  default     = null
}

variable "model_data_source" {
  description = "Uncompressed weights: an s3:// prefix (ending in /) whose objects SageMaker copies into /opt/ml/model (ModelDataSource S3Prefix, CompressionType None; no tar to unpack at start). Exclusive with model_data_url."
  type        = string
  default     = null

  validation {
    condition     = var.model_data_source == null || can(regex("^s3://[^/]+/.*/$", var.model_data_source))
    error_message = "model_data_source must be an s3:// prefix ending in / (s3://bucket/path/to/model/)."
  }
  validation {
    condition     = var.model_data_source == null || var.model_data_url == null
    error_message = "Give model_data_url (a model.tar.gz) or model_data_source (an uncompressed prefix), not both."
  }
}

variable "weights_in_image" {
  description = "The image carries the weights at /opt/ml/model (built with --build-arg BAKE_MODEL=...): no Hub id is set and network isolation is on by default, like with model_data_url."
  type        = bool
  default     = false
}

# Batching knobs: null means the app's own default applies (serve_app/settings.py is the one
# source of each value); the environment variable is set only when the variable is given.
variable "max_batch_size" {
  description = "SDTURBO_MAX_BATCH_SIZE: most requests coalesced into one pipeline call. Null: the app's default."
  type        = number
  default     = null

  validation {
    condition     = var.max_batch_size == null ? true : var.max_batch_size >= 1 && var.max_batch_size <= 64 && floor(var.max_batch_size) == var.max_batch_size
    error_message = "max_batch_size must be a whole number between 1 and 64 (or null for the app's default)."
  }
}

variable "batch_wait_timeout_s" {
  description = "SDTURBO_BATCH_WAIT_TIMEOUT_S: how long a partial batch may wait for more requests. Null: the app's default."
  type        = number
  default     = null

  validation {
    condition     = var.batch_wait_timeout_s == null ? true : var.batch_wait_timeout_s >= 0 && var.batch_wait_timeout_s <= 10
    error_message = "batch_wait_timeout_s must be between 0 and 10 seconds (or null for the app's default)."
  }
}

variable "container_environment" {
  description = "Extra environment for the container (e.g. SDTURBO_REQUEST_TIMEOUT_S), merged over the values derived from the variables above."
  type        = map(string)
  default     = {}
}

variable "enable_network_isolation" {
  description = "Run the container without network access. Null (default): on when the weights are given (model_data_url, model_data_source or weights_in_image), off when they come from the Hub. true with a Hub model_id is refused (the download cannot work)."
  type        = bool
  default     = null

  validation {
    condition     = var.enable_network_isolation != true || var.model_data_url != null || var.model_data_source != null || var.weights_in_image
    error_message = "enable_network_isolation = true needs the weights without network: model_data_url, model_data_source or weights_in_image."
  }
}

################################################################################
# Endpoint / production variant
################################################################################

variable "variant_name" {
  description = "Production variant name. Must stay the same across deployments for blue/green updates."
  type        = string
  default     = "AllTraffic"
}

variable "instance_type" {
  description = "Instance type of the variant. ml.g5.xlarge (1x A10G 24 GB) fits SD-Turbo fp16 with room for batching; ml.g4dn.xlarge (1x T4 16 GB) is cheaper and slower. Its GPU count comes from gpus_by_instance_type or gpus_per_instance."
  type        = string
  default     = "ml.g5.xlarge"

  validation {
    condition     = var.gpus_per_instance != null || contains(keys(var.gpus_by_instance_type), var.instance_type)
    error_message = "instance_type \"${var.instance_type}\" is not in gpus_by_instance_type, so its GPU count (which scales the GPU alarms and the dashboard) is unknown: set gpus_per_instance (0 for a CPU instance type) or add it to gpus_by_instance_type."
  }
}

variable "inference_ami_version" {
  description = "Host AMI of the variant (NVIDIA driver). Default al2-ami-sagemaker-inference-gpu-3-1 (driver 550, the newest AWS provider 5.100 accepts); the image's CUDA 13 torch runs on it through the container's CUDA forward compatibility. Null: SageMaker's default for the instance type (470 on g4dn/g5/p4d, 535 on g6/p5); must be null on CPU instance types. See docs/infra.md for the AMI table and al2023-ami-sagemaker-inference-gpu-4-1 (driver 580)."
  type        = string
  default     = "al2-ami-sagemaker-inference-gpu-3-1"

  validation {
    condition     = var.inference_ami_version == null || local.gpus_per_instance > 0 || !strcontains(coalesce(var.inference_ami_version, "-"), "-gpu-")
    error_message = "inference_ami_version ${coalesce(var.inference_ami_version, "-")} is a GPU host AMI but ${var.instance_type} has no GPU: set inference_ami_version = null."
  }
}

variable "initial_instance_count" {
  description = "Instances of each new endpoint configuration without autoscaling (SageMaker requires at least 1). With autoscaling every configuration starts at max_capacity instead, so a release keeps capacity (docs/infra.md, \"Rollouts\")."
  type        = number
  default     = 1
}

variable "routing_strategy" {
  description = "Real-time only: how SageMaker spreads requests over the variant's instances: LEAST_OUTSTANDING_REQUESTS (to the instance with the fewest requests in flight; suits requests of uneven length such as image sizes and step counts) or RANDOM."
  type        = string
  default     = "LEAST_OUTSTANDING_REQUESTS"

  validation {
    condition     = contains(["LEAST_OUTSTANDING_REQUESTS", "RANDOM"], var.routing_strategy)
    error_message = "routing_strategy must be LEAST_OUTSTANDING_REQUESTS or RANDOM."
  }
}

variable "volume_size_in_gb" {
  description = "ML storage volume size. Leave null for instance types with local NVMe storage (g4dn, g5, g6...), where SageMaker rejects it."
  type        = number
  default     = null
}

variable "container_startup_health_check_timeout_in_seconds" {
  description = "How long SageMaker waits for GET /ping to return 200 after the container starts (model load + warm-up). The container's own start-up deadline (SDTURBO_STARTUP_DEADLINE_S) is derived from it: this minus startup_deadline_margin_s."
  type        = number
  default     = 900
}

variable "startup_deadline_margin_s" {
  description = "The container gives up (exits with Ray's reason in the log) this many seconds before SageMaker's start-up health check would: SDTURBO_STARTUP_DEADLINE_S = container_startup_health_check_timeout_in_seconds - this."
  type        = number
  default     = 60

  validation {
    condition     = var.startup_deadline_margin_s >= 10 && var.startup_deadline_margin_s < var.container_startup_health_check_timeout_in_seconds
    error_message = "startup_deadline_margin_s must be at least 10 s and below container_startup_health_check_timeout_in_seconds."
  }
}

variable "model_data_download_timeout_in_seconds" {
  description = "Timeout for downloading model_data_url to the instance (SD-Turbo weights are ~5 GB in fp16, ~10 GB with fp32 copies)."
  type        = number
  default     = 1200
}

variable "endpoint_volume_encryption" {
  description = "Set kms_key_arn on the endpoint configuration (encrypts the ML storage volume). Null = automatic: on, except for instance families with local NVMe instance storage (g4dn, g5, g6, g6e, p4d, p5, *d) where SageMaker rejects a KMS key and the instance store is hardware-encrypted (AES-256)."
  type        = bool
  default     = null
}

################################################################################
# Async inference
################################################################################

variable "async_max_concurrent_invocations_per_instance" {
  description = "Async only: requests SageMaker sends concurrently to one instance. Null: 2 x max_batch_size (the app's default when null) x GPUs per instance, what the app's model replicas (one per GPU) hold at once, so full batches can form."
  type        = number
  default     = null
}

variable "async_include_inference_response_in_notification" {
  description = "Async only: include the (base64 image) response in SNS success notifications. Off by default: SNS messages are limited to 256 KB."
  type        = bool
  default     = false
}

################################################################################
# S3 bucket (async inputs/outputs)
################################################################################

variable "create_bucket" {
  description = "Create the S3 bucket. Null = automatic: created when endpoint_type is async (which needs it)."
  type        = bool
  default     = null

  validation {
    condition     = var.create_bucket != false || var.endpoint_type != "async"
    error_message = "endpoint_type = \"async\" needs the stack's S3 bucket: create_bucket must not be false."
  }
}

variable "bucket_name" {
  description = "Bucket name. Null: \"<name>-<account id>-<region>\"."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket (test and dev stacks)."
  type        = bool
  default     = false
}

variable "async_object_expiration_days" {
  description = "Lifecycle: async inputs, outputs and failures are deleted after this many days."
  type        = number
  default     = 7
}

################################################################################
# Network (optional private VPC in two zones)
################################################################################

variable "create_vpc" {
  description = "Run the endpoint in a private VPC of the stack: one private subnet in each of two Availability Zones, no internet route, VPC endpoints for S3 (gateway), ECR API and registry, CloudWatch Logs, STS and the SageMaker runtime (interface). Needs the weights without network (model_data_url, model_data_source or weights_in_image): the container runs with network isolation there. Cost: docs/infra.md."
  type        = bool
  default     = false

  validation {
    condition     = !var.create_vpc || var.model_data_url != null || var.model_data_source != null || var.weights_in_image
    error_message = "create_vpc = true has no route to the Hugging Face Hub: give the weights with model_data_url, model_data_source or weights_in_image."
  }
}

variable "vpc_cidr_block" {
  description = "CIDR of the stack's VPC (create_vpc); the private subnets are its first /20s."
  type        = string
  default     = "10.42.0.0/16"
}

variable "availability_zones" {
  description = "Zones of the VPC's private subnets (at least two). Null: the region's first two available zones."
  type        = list(string)
  default     = null
}

################################################################################
# KMS
################################################################################

variable "kms_key_arn" {
  description = "Existing KMS key for the bucket, SNS topics, log group, ECR and endpoint. Null: the stack creates one (with rotation)."
  type        = string
  default     = null
}

variable "kms_deletion_window_in_days" {
  description = "Deletion window of the stack-created KMS key (7-30)."
  type        = number
  default     = 30
}

################################################################################
# Deployment guardrails (blue/green canary + automatic rollback)
################################################################################

variable "deployment_traffic_routing" {
  description = "How a release shifts traffic to the new fleet: CANARY (canary_size first, baked for canary_wait_interval_in_seconds, then the rest) or ALL_AT_ONCE (for a one-instance fleet, where a canary would be the whole fleet: all traffic moves, and the rollback alarms are watched for termination_wait_in_seconds before the old fleet goes)."
  type        = string
  default     = "CANARY"

  validation {
    condition     = contains(["CANARY", "ALL_AT_ONCE"], var.deployment_traffic_routing)
    error_message = "deployment_traffic_routing must be CANARY or ALL_AT_ONCE."
  }
  validation {
    # The fleet of a new configuration: max_capacity with autoscaling, else initial_instance_count.
    condition = var.deployment_traffic_routing != "CANARY" || (
      (var.enable_autoscaling ? max(var.max_capacity, var.initial_instance_count) : var.initial_instance_count) >= 2 && (
        var.canary_size_type == "INSTANCE_COUNT"
        ? var.canary_size_value * 2 <= (var.enable_autoscaling ? max(var.max_capacity, var.initial_instance_count) : var.initial_instance_count)
        : var.canary_size_value <= 50
      )
    )
    error_message = "A CANARY needs a new fleet of at least 2 instances and a canary of at most half of it (SageMaker's limit): raise max_capacity / initial_instance_count, lower canary_size_value, or use deployment_traffic_routing = \"ALL_AT_ONCE\" with termination_wait_in_seconds > 0 as the health gate."
  }
  validation {
    condition     = var.deployment_traffic_routing != "ALL_AT_ONCE" || var.termination_wait_in_seconds >= 300
    error_message = "ALL_AT_ONCE is gated only by the rollback alarms during termination_wait_in_seconds: give it at least 300 s."
  }
}

variable "canary_size_type" {
  description = "Canary size unit: INSTANCE_COUNT or CAPACITY_PERCENT (of the new fleet)."
  type        = string
  default     = "INSTANCE_COUNT"
}

variable "canary_size_value" {
  description = "Size of the canary: instances (INSTANCE_COUNT) or percent of the new fleet (CAPACITY_PERCENT); at most half of the fleet."
  type        = number
  default     = 1
}

variable "canary_wait_interval_in_seconds" {
  description = "Baking time of the canary before the rest of the traffic shifts (rollback alarms are watched meanwhile)."
  type        = number
  default     = 600
}

variable "termination_wait_in_seconds" {
  description = "Final baking time after all traffic moved, before the old (blue) fleet is terminated."
  type        = number
  default     = 300
}

variable "deployment_maximum_execution_timeout_in_seconds" {
  description = "Upper bound for the whole blue/green deployment (must exceed canary wait + termination wait)."
  type        = number
  default     = 3600
}

################################################################################
# Autoscaling
################################################################################

variable "enable_autoscaling" {
  description = "Register the variant with Application Auto Scaling and attach the scaling policies."
  type        = bool
  default     = true
}

variable "min_capacity" {
  description = "Minimum instances. Null: 1 for real-time (which cannot scale to zero), 0 for async (scale to zero)."
  type        = number
  default     = null
}

variable "max_capacity" {
  description = "Maximum instances."
  type        = number
  default     = 2
}

variable "realtime_scaling_metric" {
  description = "Real-time target tracking metric: \"concurrency\" (default: SageMakerVariantConcurrentRequestsPerModelHighResolution, requests in flight per model, reported every 10 s, so scale-out reacts within a minute) or \"invocations\" (SageMakerVariantInvocationsPerInstance, per minute)."
  type        = string
  default     = "concurrency"
}

variable "realtime_target_value" {
  description = "Target per instance for the real-time metric. Null: for \"concurrency\", max_batch_size (the app's default when null) x GPUs per instance, one batch in flight per model replica; for \"invocations\", 60 per minute. Tune with the load test."
  type        = number
  default     = null
}

variable "async_backlog_target_per_instance" {
  description = "Async target tracking: ApproximateBacklogSizePerInstance to hold."
  type        = number
  default     = 5
}

variable "scale_in_cooldown" {
  description = "Seconds after a scale-in before another scale-in."
  type        = number
  default     = 600
}

variable "scale_out_cooldown" {
  description = "Seconds after a scale-out before another scale-out."
  type        = number
  default     = 120
}

################################################################################
# Alarms and dashboard
################################################################################

variable "alarm_email_endpoints" {
  description = "E-mail addresses subscribed to the alarm SNS topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "alarm_period_seconds" {
  description = "Period of the alarm statistics."
  type        = number
  default     = 60
}

variable "alarm_evaluation_periods" {
  description = "Consecutive periods an alarm threshold must be breached."
  type        = number
  default     = 5
}

variable "gpu_utilization_threshold" {
  description = "Alarm when GPU utilisation per GPU (percent) exceeds this. CloudWatch sums the instance's GPUs, so the alarm's threshold is this x the GPUs per instance (360 on a 4-GPU type for 90)."
  type        = number
  default     = 90
}

variable "gpu_memory_utilization_threshold" {
  description = "Alarm when GPU memory utilisation per GPU (percent) exceeds this; scaled by the GPUs per instance like gpu_utilization_threshold."
  type        = number
  default     = 90
}

variable "error_5xx_threshold" {
  description = "Alarm when Invocation5XXErrors per period exceed this (all fleets; the rollback alarm is the new fleet's 5xx rate, rollback_5xx_rate_threshold)."
  type        = number
  default     = 5
}

variable "model_error_threshold" {
  description = "Alarm when InvocationModelErrors per period exceed this (notification only: the metric counts client 4xx answers too)."
  type        = number
  default     = 5
}

variable "rollback_5xx_rate_threshold" {
  description = "Roll a deployment back when the new fleet answers more than this fraction of its requests with 5xx (0.01 = 1 %)."
  type        = number
  default     = 0.01
}

variable "model_latency_threshold_ms" {
  description = "Alarm when p90 ModelLatency exceeds this many milliseconds (CloudWatch reports microseconds; the module converts); the same threshold on the new fleet rolls a deployment back."
  type        = number
  default     = 3000
}

variable "async_backlog_age_threshold_seconds" {
  description = "Async only: alarm when ApproximateAgeOfOldestRequest exceeds this many seconds."
  type        = number
  default     = 900
}

variable "log_retention_in_days" {
  description = "Retention of the endpoint's CloudWatch log group."
  type        = number
  default     = 30
}

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard \"<name>\" (endpoint and app metrics, cost per 1,000 images)."
  type        = bool
  default     = true
}

variable "dashboard_period_seconds" {
  description = "Period of the dashboard's graphs and of the cost estimate's time slices."
  type        = number
  default     = 300
}

variable "instance_price_usd_per_hour" {
  description = "On-demand price of one instance_type instance in USD per hour, for the dashboard's estimated cost per 1,000 images (check your region's SageMaker real-time inference price). Null: the widget says to set it."
  type        = number
  default     = null
}

################################################################################
# GitHub Actions OIDC deploy role
################################################################################

variable "create_github_oidc_role" {
  description = "Create an IAM role GitHub Actions can assume via OIDC to push the image, run terraform for this stack and smoke-test the endpoint."
  type        = bool
  default     = false
}

variable "github_oidc_provider_arn" {
  description = "ARN of the account's existing token.actions.githubusercontent.com OIDC provider (arn:<partition>:iam::<account>:oidc-provider/token.actions.githubusercontent.com; an account has at most one). Null: the stack creates it."
  type        = string
  default     = null
}

variable "github_subject_format" {
  description = "How GitHub names the repository in the OIDC subject claim: \"classic\" (repo:org/repo:...) or \"immutable\" (repo:org@<owner id>/repo@<repository id>:..., the default for repositories created or renamed from 2026-07-15). See docs/infra.md."
  type        = string
  default     = "classic"
}

variable "github_repository_owner_id" {
  description = "Numeric id of the repository's owner (github.repository_owner_id); needed with github_subject_format = \"immutable\"."
  type        = string
  default     = null
}

variable "github_repository_id" {
  description = "Numeric id of the repository (github.repository_id); needed with github_subject_format = \"immutable\"."
  type        = string
  default     = null
}

variable "github_repository" {
  description = "Repository allowed to assume the role, as \"org/repo\" (required with create_github_oidc_role)."
  type        = string
  default     = null

  validation {
    condition     = !var.create_github_oidc_role || var.github_repository != null
    error_message = "create_github_oidc_role = true needs github_repository (\"org/repo\")."
  }
}

variable "github_branch" {
  description = "Branch whose workflows may assume the role (sub claim repo:<repo>:ref:refs/heads/<branch>)."
  type        = string
  default     = "main"
}

variable "github_environment" {
  description = "GitHub environment (with required reviewers) whose jobs may assume the role (sub claim repo:<repo>:environment:<env>). Null: only the branch is trusted."
  type        = string
  default     = "production"
}

variable "terraform_state_bucket" {
  description = "S3 bucket of the remote Terraform state the deploy role may read/write. Null: no state permissions (local state or another mechanism)."
  type        = string
  default     = null
}

variable "terraform_state_key_prefix" {
  description = "Key prefix inside terraform_state_bucket the deploy role may use (e.g. \"sd-turbo/\")."
  type        = string
  default     = ""
}

variable "terraform_lock_table" {
  description = "DynamoDB table used for state locking. Null: none (e.g. S3 native locking with use_lockfile, covered by the key prefix)."
  type        = string
  default     = null
}
