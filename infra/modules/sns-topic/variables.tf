variable "name" {
  description = "Topic name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the messages at rest."
  type        = string
}

variable "email_endpoints" {
  description = "E-mail addresses subscribed to the topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of the topic."
  type        = map(string)
  default     = {}
}
