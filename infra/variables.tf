################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix for every resource (endpoint, model, roles, alarms, topics). Lowercase letters, digits and hyphens."
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
  description = "Create the SageMaker model, endpoint configuration, endpoint, autoscaling and alarms. Set false for the bootstrap apply that only creates the ECR repository, bucket, KMS key and GitHub OIDC role (before the first image is pushed)."
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
  description = "Name of the ECR repository. Defaults to var.name."
  type        = string
  default     = null
}

variable "ecr_max_image_count" {
  description = "Lifecycle policy: keep at most this many tagged images; older ones are expired. Untagged images expire after 7 days."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_max_image_count >= 1
    error_message = "ecr_max_image_count must be at least 1."
  }
}

variable "ecr_force_delete" {
  description = "Allow terraform destroy to delete the ECR repository even if it still holds images. Keep false in production."
  type        = bool
  default     = false
}

variable "image_tag" {
  description = "Tag of the image in the module's ECR repository (the deploy workflow passes the git SHA). Ignored when image_uri is set. Tags are immutable: use a new tag for every build."
  type        = string
  default     = null
}

variable "image_uri" {
  description = "Full image URI (registry/repository:tag or @sha256 digest). Overrides image_tag; required when create_ecr_repository is false."
  type        = string
  default     = null
}

################################################################################
# Model
################################################################################

variable "model_data_url" {
  description = "Optional S3 URI of a model.tar.gz with pre-downloaded weights (extracted by SageMaker into /opt/ml/model). Null: the container downloads/loads weights itself."
  type        = string
  default     = null

  validation {
    condition     = var.model_data_url == null || can(regex("^s3://[a-z0-9][a-z0-9.-]+/.+", var.model_data_url))
    error_message = "model_data_url must be an s3://bucket/key URI."
  }
}

variable "model_id" {
  description = "Model passed to the container as SDTURBO_MODEL (a Hugging Face id such as stabilityai/sd-turbo, or an offline preset such as tiny)."
  type        = string
  default     = "stabilityai/sd-turbo"
}

variable "model_revision" {
  description = "Model revision passed as SDTURBO_MODEL_REVISION (pin a commit hash in production). Null: not set."
  type        = string
  default     = null
}

variable "max_batch_size" {
  description = "Dynamic batching upper bound passed as SDTURBO_MAX_BATCH_SIZE."
  type        = number
  default     = 4

  validation {
    condition     = var.max_batch_size >= 1 && var.max_batch_size <= 64
    error_message = "max_batch_size must be between 1 and 64."
  }
}

variable "container_environment" {
  description = "Extra environment for the model container (e.g. SDTURBO_REQUEST_TIMEOUT_S). Merged over the SDTURBO_* values derived from the variables above."
  type        = map(string)
  default     = {}
}

variable "enable_network_isolation" {
  description = "Run the container without network access. Only possible when the weights come from model_data_url (no download from Hugging Face at start-up)."
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
  description = "Instance type of the variant. ml.g5.xlarge (1x A10G 24 GB) fits SD-Turbo fp16 with room for batching; ml.g4dn.xlarge (1x T4 16 GB) is cheaper and slower. The moto tests set ml.g4dn.xlarge because moto 5.2 does not list g5 types; the production default is unchanged."
  type        = string
  default     = "ml.g5.xlarge"

  validation {
    condition     = can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like ml.<family>.<size>."
  }
}

variable "initial_instance_count" {
  description = "Instances when the endpoint is created (SageMaker requires at least 1; async endpoints then scale to min_capacity, which may be 0)."
  type        = number
  default     = 1

  validation {
    condition     = var.initial_instance_count >= 1
    error_message = "initial_instance_count must be at least 1."
  }
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

  validation {
    condition     = var.container_startup_health_check_timeout_in_seconds >= 60 && var.container_startup_health_check_timeout_in_seconds <= 3600
    error_message = "container_startup_health_check_timeout_in_seconds must be between 60 and 3600."
  }
}

variable "model_data_download_timeout_in_seconds" {
  description = "Timeout for downloading model_data_url to the instance (SD-Turbo weights are ~5 GB in fp16, ~10 GB with fp32 copies)."
  type        = number
  default     = 1200

  validation {
    condition     = var.model_data_download_timeout_in_seconds >= 60 && var.model_data_download_timeout_in_seconds <= 3600
    error_message = "model_data_download_timeout_in_seconds must be between 60 and 3600."
  }
}

variable "endpoint_volume_encryption" {
  description = "Set kms_key_arn on the endpoint configuration (encrypts the attached ML storage volume). Null = automatic: on, except for instance families with local NVMe instance storage (g4dn, g5, g6, g6e, p4d, p5, *d) where SageMaker rejects a KMS key and the instance store is hardware-encrypted (AES-256)."
  type        = bool
  default     = null
}

################################################################################
# Async inference
################################################################################

variable "async_max_concurrent_invocations_per_instance" {
  description = "Async only: requests SageMaker sends concurrently to one instance. Roughly max_batch_size so the batcher can fill."
  type        = number
  default     = 4

  validation {
    condition     = var.async_max_concurrent_invocations_per_instance >= 1 && var.async_max_concurrent_invocations_per_instance <= 1000
    error_message = "async_max_concurrent_invocations_per_instance must be between 1 and 1000."
  }
}

variable "async_include_inference_response_in_notification" {
  description = "Async only: include the (base64 image) response in SNS success notifications. Off by default: SNS messages are limited to 256 KB."
  type        = bool
  default     = false
}

################################################################################
# S3 bucket (async inputs/outputs, model artefacts)
################################################################################

variable "create_bucket" {
  description = "Create the S3 bucket. Null = automatic: created when endpoint_type is async."
  type        = bool
  default     = null
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

  validation {
    condition     = var.async_object_expiration_days >= 1
    error_message = "async_object_expiration_days must be at least 1."
  }
}

################################################################################
# KMS
################################################################################

variable "kms_key_arn" {
  description = "Existing KMS key for the bucket, SNS topics, log group, ECR and endpoint. Null: the module creates one (with rotation)."
  type        = string
  default     = null
}

variable "kms_deletion_window_in_days" {
  description = "Deletion window of the module-created KMS key."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

################################################################################
# Deployment guardrails (blue/green canary + automatic rollback)
################################################################################

variable "canary_size_type" {
  description = "Canary size unit: CAPACITY_PERCENT or INSTANCE_COUNT."
  type        = string
  default     = "CAPACITY_PERCENT"

  validation {
    condition     = contains(["CAPACITY_PERCENT", "INSTANCE_COUNT"], var.canary_size_type)
    error_message = "canary_size_type must be CAPACITY_PERCENT or INSTANCE_COUNT."
  }
}

variable "canary_size_value" {
  description = "Share of the new (green) fleet that receives traffic during the canary phase."
  type        = number
  default     = 25

  validation {
    condition     = var.canary_size_value >= 1
    error_message = "canary_size_value must be at least 1."
  }
}

variable "canary_wait_interval_in_seconds" {
  description = "Baking time of the canary before the rest of the traffic shifts (rollback alarms are watched meanwhile)."
  type        = number
  default     = 600

  validation {
    condition     = var.canary_wait_interval_in_seconds >= 0 && var.canary_wait_interval_in_seconds <= 3600
    error_message = "canary_wait_interval_in_seconds must be between 0 and 3600."
  }
}

variable "termination_wait_in_seconds" {
  description = "Final baking time after all traffic moved, before the old (blue) fleet is terminated."
  type        = number
  default     = 300

  validation {
    condition     = var.termination_wait_in_seconds >= 0 && var.termination_wait_in_seconds <= 3600
    error_message = "termination_wait_in_seconds must be between 0 and 3600."
  }
}

variable "deployment_maximum_execution_timeout_in_seconds" {
  description = "Upper bound for the whole blue/green deployment (must exceed canary wait + termination wait)."
  type        = number
  default     = 3600

  validation {
    condition     = var.deployment_maximum_execution_timeout_in_seconds >= 600 && var.deployment_maximum_execution_timeout_in_seconds <= 14400
    error_message = "deployment_maximum_execution_timeout_in_seconds must be between 600 and 14400."
  }
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
  description = "Minimum instances. Real-time endpoints need at least 1; async endpoints may use 0 (scale to zero)."
  type        = number
  default     = null
}

variable "max_capacity" {
  description = "Maximum instances."
  type        = number
  default     = 2

  validation {
    condition     = var.max_capacity >= 1
    error_message = "max_capacity must be at least 1."
  }
}

variable "realtime_scaling_metric" {
  description = "Real-time target tracking metric: \"invocations\" (SageMakerVariantInvocationsPerInstance, per minute) or \"concurrency\" (SageMakerVariantConcurrentRequestsPerModelHighResolution, in-flight requests)."
  type        = string
  default     = "invocations"

  validation {
    condition     = contains(["invocations", "concurrency"], var.realtime_scaling_metric)
    error_message = "realtime_scaling_metric must be \"invocations\" or \"concurrency\"."
  }
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
# Alarms
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
  description = "Alarm when average GPUUtilization (percent, summed over the instance's GPUs) exceeds this."
  type        = number
  default     = 90
}

variable "gpu_memory_utilization_threshold" {
  description = "Alarm when average GPUMemoryUtilization (percent) exceeds this."
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
  description = "Repository allowed to assume the role, as \"org/repo\"."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like \"org/repo\"."
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
