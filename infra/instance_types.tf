################################################################################
# GPUs per instance type
#
# CloudWatch's GPUUtilization and GPUMemoryUtilization for a SageMaker endpoint are the SUM over
# the instance's GPUs (0-100 % per GPU: 0-400 % on a 4-GPU instance). The alarm thresholds and
# the dashboard's GPU axes are therefore per-GPU figures multiplied by the GPU count of the
# chosen instance type, taken from this table (or from gpus_per_instance).
################################################################################

variable "gpus_by_instance_type" {
  description = "GPUs per instance of the SageMaker instance types the image targets (NVIDIA T4 g4dn, A10G g5, L4 g6, L40S g6e, A100 p4d/p4de, H100/H200 p5/p5e/p5en). Extend it, or set gpus_per_instance, for other types."
  type        = map(number)
  default = {
    "ml.g4dn.xlarge"   = 1
    "ml.g4dn.2xlarge"  = 1
    "ml.g4dn.4xlarge"  = 1
    "ml.g4dn.8xlarge"  = 1
    "ml.g4dn.12xlarge" = 4
    "ml.g4dn.16xlarge" = 1
    "ml.g5.xlarge"     = 1
    "ml.g5.2xlarge"    = 1
    "ml.g5.4xlarge"    = 1
    "ml.g5.8xlarge"    = 1
    "ml.g5.12xlarge"   = 4
    "ml.g5.16xlarge"   = 1
    "ml.g5.24xlarge"   = 4
    "ml.g5.48xlarge"   = 8
    "ml.g6.xlarge"     = 1
    "ml.g6.2xlarge"    = 1
    "ml.g6.4xlarge"    = 1
    "ml.g6.8xlarge"    = 1
    "ml.g6.12xlarge"   = 4
    "ml.g6.16xlarge"   = 1
    "ml.g6.24xlarge"   = 4
    "ml.g6.48xlarge"   = 8
    "ml.g6e.xlarge"    = 1
    "ml.g6e.2xlarge"   = 1
    "ml.g6e.4xlarge"   = 1
    "ml.g6e.8xlarge"   = 1
    "ml.g6e.12xlarge"  = 4
    "ml.g6e.16xlarge"  = 1
    "ml.g6e.24xlarge"  = 4
    "ml.g6e.48xlarge"  = 8
    "ml.p4d.24xlarge"  = 8
    "ml.p4de.24xlarge" = 8
    "ml.p5.48xlarge"   = 8
    "ml.p5e.48xlarge"  = 8
    "ml.p5en.48xlarge" = 8
  }

  validation {
    condition     = alltrue([for type, gpus in var.gpus_by_instance_type : can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", type)) && gpus >= 0 && floor(gpus) == gpus])
    error_message = "gpus_by_instance_type maps ml.<family>.<size> to a whole number of GPUs >= 0."
  }
}

variable "gpus_per_instance" {
  description = "GPUs per instance of instance_type, overriding gpus_by_instance_type (for a type the table lacks). 0: a CPU instance type (no GPU alarms or widgets; set inference_ami_version = null). Null: from the table."
  type        = number
  default     = null

  validation {
    condition     = var.gpus_per_instance == null ? true : var.gpus_per_instance >= 0 && floor(var.gpus_per_instance) == var.gpus_per_instance
    error_message = "gpus_per_instance must be a whole number >= 0 (or null to use gpus_by_instance_type)."
  }
}

locals {
  # instance_type's validation guarantees one of the two is set.
  gpus_per_instance = coalesce(var.gpus_per_instance, lookup(var.gpus_by_instance_type, var.instance_type, 0))
}
