terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Remote state is the user's choice. For CI, add a backend file (see docs/infra.md), e.g.
  #   terraform { backend "s3" {} }
  # and run: terraform init -backend-config=bucket=<state bucket> -backend-config=key=<prefix>/terraform.tfstate \
  #          -backend-config=region=<region> -backend-config=use_lockfile=true
}
