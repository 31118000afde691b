terraform {
  # 1.9: variable validations that refer to other variables (instance_type / gpus_per_instance).
  required_version = ">= 1.9.0"

  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.0" }
  }
}
