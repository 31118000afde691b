variable "name" {
  description = "Prefix of the policy and alarm names."
  type        = string
}

variable "endpoint_name" {
  description = "Endpoint whose variant is scaled (pass the endpoint resource's name, so the target waits for it)."
  type        = string
}

variable "variant_name" {
  description = "Production variant that is scaled."
  type        = string
}

variable "async" {
  description = "The variant belongs to an async endpoint: track the backlog per instance (ApproximateBacklogSizePerInstance) and add the 0 -> 1 step policy, instead of the real-time target tracking."
  type        = bool
  default     = false
}

variable "min_capacity" {
  description = "Minimum instances (real-time: at least 1; async: 0 allows scale to zero)."
  type        = number
}

variable "max_capacity" {
  description = "Maximum instances."
  type        = number

  validation {
    condition     = var.max_capacity >= 1
    error_message = "max_capacity must be at least 1."
  }
}

variable "realtime_scaling_metric" {
  description = "Real-time only: which predefined metric the target tracking policy follows, \"concurrency\" (high resolution) or \"invocations\"."
  type        = string
  default     = "concurrency"

  validation {
    condition     = contains(["invocations", "concurrency"], var.realtime_scaling_metric)
    error_message = "realtime_scaling_metric is \"invocations\" (SageMakerVariantInvocationsPerInstance) or \"concurrency\" (SageMakerVariantConcurrentRequestsPerModelHighResolution)."
  }
}

variable "realtime_target_value" {
  description = "Real-time only: target value of the tracked metric per instance."
  type        = number
  default     = 60
}

variable "async_backlog_target_per_instance" {
  description = "Async only: target value of ApproximateBacklogSizePerInstance."
  type        = number
  default     = 5
}

variable "scale_in_cooldown" {
  description = "Cooldown of the target tracking policy after a scale-in, in seconds."
  type        = number
  default     = 600
}

variable "scale_out_cooldown" {
  description = "Cooldown after a scale-out (target tracking and the 0 -> 1 step), in seconds."
  type        = number
  default     = 120
}

variable "tags" {
  description = "Tags of the scalable target and the alarm."
  type        = map(string)
  default     = {}
}
