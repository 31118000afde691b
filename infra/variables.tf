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
  description = "SDTURBO_MODEL: Hugging Face hub id, a directory in the image, or /opt/ml/model (with model_data_url)."
  type        = string
  default     = "stabilityai/sd-turbo"
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
  description = "Run the container without network access. Only possible when the weights need no download (model_data_url or baked into the image)."
  type        = bool
  default     = false
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
  description = "Instances when the endpoint is created (SageMaker requires at least 1; async endpoints then scale to min_capacity, which may be 0)."
  type        = number
  default     = 1
}

variable "volume_size_in_gb" {
  description = "ML storage volume size. Leave null for instance types with local NVMe storage (g4dn, g5, g6...), where SageMaker rejects it."
  type        = number
  default     = null
}

variable "container_startup_health_check_timeout_in_seconds" {
  description = "How long SageMaker waits for GET /ping to return 200 after the container starts (model load + warm-up). SD-Turbo from the Hugging Face hub takes a few minutes on first start."
  type        = number
  default     = 900
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

variable "canary_size_type" {
  description = "Canary size unit: CAPACITY_PERCENT or INSTANCE_COUNT."
  type        = string
  default     = "CAPACITY_PERCENT"
}

variable "canary_size_value" {
  description = "Share of the new (green) fleet that receives traffic during the canary phase."
  type        = number
  default     = 25
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
  description = "Real-time target tracking metric: \"invocations\" (SageMakerVariantInvocationsPerInstance, per minute) or \"concurrency\" (SageMakerVariantConcurrentRequestsPerModelHighResolution, in-flight requests)."
  type        = string
  default     = "invocations"
}

variable "realtime_target_value" {
  description = "Target per instance for the real-time metric: invocations per minute (\"invocations\") or concurrent requests (\"concurrency\"). Tune with the load test."
  type        = number
  default     = 60
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
  description = "Alarm (and roll back a deployment) when Invocation5XXErrors per period exceed this."
  type        = number
  default     = 5
}

variable "model_error_threshold" {
  description = "Alarm (and roll back a deployment) when InvocationModelErrors per period exceed this."
  type        = number
  default     = 5
}

variable "model_latency_threshold_ms" {
  description = "Alarm (and roll back a deployment) when p90 ModelLatency exceeds this many milliseconds (CloudWatch reports microseconds; the module converts)."
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

variable "create_github_oidc_provider" {
  description = "Create the account's token.actions.githubusercontent.com OIDC provider. Set false when it already exists (there can be only one per account); it is then looked up."
  type        = bool
  default     = true
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
