variable "bucket_name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the default SSE-KMS encryption."
  type        = string
}

variable "prefixes" {
  description = "Key prefixes of the async traffic: where clients upload requests (input), where SageMaker writes responses (output) and failures (failure)."
  type = object({
    input   = string
    output  = string
    failure = string
  })
  default = {
    input   = "async-inputs/"
    output  = "async-outputs/"
    failure = "async-failures/"
  }

  validation {
    condition     = alltrue([for p in values(var.prefixes) : endswith(p, "/") && !startswith(p, "/")])
    error_message = "Each prefix must end with \"/\" and must not start with one."
  }
}

variable "object_expiration_days" {
  description = "Objects under the async prefixes are deleted after this many days."
  type        = number
  default     = 7

  validation {
    condition     = var.object_expiration_days >= 1
    error_message = "object_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (dev and test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the bucket."
  type        = map(string)
  default     = {}
}
