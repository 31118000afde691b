################################################################################
# What is watched
################################################################################

variable "name" {
  description = "Prefix of the alarm names; the dashboard's name."
  type        = string
}

variable "endpoint_name" {
  description = "SageMaker endpoint (metric dimension EndpointName)."
  type        = string
}

variable "variant_name" {
  description = "Production variant (metric dimension VariantName)."
  type        = string
}

variable "endpoint_config_name" {
  description = "The endpoint configuration being deployed (metric dimension EndpointConfigName): the rollback alarms watch the fleet that runs it, the new (green) fleet during a deployment."
  type        = string
}

variable "async" {
  description = "The endpoint is asynchronous: add the ApproximateAgeOfOldestRequest alarm and the backlog graph."
  type        = bool
  default     = false
}

variable "instance_type" {
  description = "Instance type of the variant (named in alarm descriptions and dashboard titles)."
  type        = string
}

variable "gpus_per_instance" {
  description = "GPUs per instance: CloudWatch sums GPUUtilization / GPUMemoryUtilization over them, so thresholds and axes scale with it. 0: a CPU instance (no GPU alarms or widgets)."
  type        = number

  validation {
    condition     = var.gpus_per_instance >= 0 && floor(var.gpus_per_instance) == var.gpus_per_instance
    error_message = "gpus_per_instance must be a whole number >= 0."
  }
}

variable "app_metric_namespace" {
  description = "CloudWatch namespace of the app's Embedded Metric Format records."
  type        = string
  default     = "SDTurbo"
}

################################################################################
# Alarms
################################################################################

variable "alarm_topic_arn" {
  description = "SNS topic the alarms notify (on ALARM and OK)."
  type        = string
}

variable "alarm_period_seconds" {
  description = "Period, in seconds, over which each alarm's statistic is computed."
  type        = number
  default     = 60
}

variable "alarm_evaluation_periods" {
  description = "An alarm fires after this many consecutive breaching periods (datapoints_to_alarm is the same)."
  type        = number
  default     = 5
}

variable "gpu_utilization_threshold" {
  description = "Alarm when GPU utilisation per GPU (percent, 1-100) exceeds this; the alarm's threshold is this x gpus_per_instance."
  type        = number
  default     = 90

  validation {
    condition     = var.gpu_utilization_threshold > 0 && var.gpu_utilization_threshold <= 100
    error_message = "gpu_utilization_threshold is a per-GPU percentage: more than 0, at most 100."
  }
}

variable "gpu_memory_utilization_threshold" {
  description = "Alarm when GPU memory utilisation per GPU (percent, 1-100) exceeds this; the alarm's threshold is this x gpus_per_instance."
  type        = number
  default     = 90

  validation {
    condition     = var.gpu_memory_utilization_threshold > 0 && var.gpu_memory_utilization_threshold <= 100
    error_message = "gpu_memory_utilization_threshold is a per-GPU percentage: more than 0, at most 100."
  }
}

variable "error_5xx_threshold" {
  description = "Threshold of the invocation-5xx-errors alarm (a rollback alarm): Invocation5XXErrors summed over one period."
  type        = number
  default     = 5
}

variable "model_error_threshold" {
  description = "Threshold of the model-errors alarm (a rollback alarm): InvocationModelErrors summed over one period."
  type        = number
  default     = 5
}

variable "rollback_5xx_rate_threshold" {
  description = "Roll a deployment back when the new fleet's share of 5xx responses (Invocation5XXErrors Average: 1 per 5xx, 0 otherwise) exceeds this fraction."
  type        = number
  default     = 0.01

  validation {
    condition     = var.rollback_5xx_rate_threshold > 0 && var.rollback_5xx_rate_threshold < 1
    error_message = "rollback_5xx_rate_threshold is a fraction between 0 and 1 (0.01 = 1 %)."
  }
}

variable "model_latency_threshold_ms" {
  description = "Threshold of the model-latency-p90 alarm (a rollback alarm), in milliseconds (the alarm compares microseconds)."
  type        = number
  default     = 3000
}

variable "async_backlog_age_threshold_seconds" {
  description = "Threshold of the async-backlog-age alarm: ApproximateAgeOfOldestRequest, in seconds."
  type        = number
  default     = 900
}

################################################################################
# Dashboard
################################################################################

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard."
  type        = bool
  default     = true
}

variable "dashboard_period_seconds" {
  description = "Period of the dashboard's graphs (and of the cost estimate's time slices)."
  type        = number
  default     = 300

  validation {
    condition     = var.dashboard_period_seconds >= 60 && var.dashboard_period_seconds % 60 == 0
    error_message = "dashboard_period_seconds must be a multiple of 60."
  }
}

variable "instance_price_usd_per_hour" {
  description = "On-demand price of one instance in USD per hour (your region's SageMaker real-time inference price). Null: the cost widget explains what to set instead."
  type        = number
  default     = null

  validation {
    condition     = var.instance_price_usd_per_hour == null ? true : var.instance_price_usd_per_hour > 0
    error_message = "instance_price_usd_per_hour must be positive."
  }
}

variable "min_capacity" {
  description = "Autoscaling minimum, drawn on the instance-count graph (null: not drawn)."
  type        = number
  default     = null
}

variable "max_capacity" {
  description = "Autoscaling maximum, drawn on the instance-count graph (null: not drawn)."
  type        = number
  default     = null
}

variable "tags" {
  description = "Tags of the alarms (CloudWatch dashboards take no tags)."
  type        = map(string)
  default     = {}
}
