variable "name" {
  description = "Prefix of the VPC, subnet, security group and endpoint names."
  type        = string
}

variable "cidr_block" {
  description = "CIDR of the VPC; the private subnets are its first /20s (one per zone)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 24
    error_message = "cidr_block must be an IPv4 CIDR of /24 or larger."
  }
}

variable "availability_zones" {
  description = "Zones of the private subnets (at least two). Null: the region's first two available zones."
  type        = list(string)
  default     = null

  validation {
    condition     = var.availability_zones == null || length(coalesce(var.availability_zones, [])) >= 2
    error_message = "availability_zones needs at least two zones."
  }
}

variable "tags" {
  description = "Tags of every resource of the module."
  type        = map(string)
  default     = {}
}
