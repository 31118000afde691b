variable "alias" {
  description = "Alias of the key, without the \"alias/\" prefix."
  type        = string
}

variable "description" {
  description = "Description of the key (what it encrypts)."
  type        = string
}

variable "log_group_name_prefix" {
  description = "CloudWatch Logs may use the key for log groups whose name starts with this (e.g. \"/aws/sagemaker/Endpoints/sd-turbo\")."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days a deleted key waits before it is destroyed (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags of the key."
  type        = map(string)
  default     = {}
}
