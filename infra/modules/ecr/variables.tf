variable "name" {
  description = "Repository name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images."
  type        = string
}

variable "max_image_count" {
  description = "Lifecycle policy: keep at most this many images; older ones expire."
  type        = number
  default     = 30

  validation {
    condition     = var.max_image_count >= 1
    error_message = "max_image_count must be at least 1."
  }
}

variable "untagged_image_expiry_days" {
  description = "Lifecycle policy: untagged images (e.g. from interrupted pushes) expire after this many days."
  type        = number
  default     = 7
}

variable "force_delete" {
  description = "Let terraform destroy delete the repository while it still holds images (dev and test stacks only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the repository."
  type        = map(string)
  default     = {}
}
