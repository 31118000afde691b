variable "image_tag" {
  description = "Tag of the pushed image in the stack's ECR repository; null for the first apply, before there is one (creates the repository, no endpoint)."
  type        = string
  default     = null
}
