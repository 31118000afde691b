terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.0" }
  }

  # State in S3 with native locking (Terraform >= 1.10). Bucket, key and region are given at
  # init (-backend-config=..., see docs/infra.md), so no account detail is committed.
  backend "s3" {}
}
