################################################################################
# The production deployment of sd-turbo-serve: the root the release workflow plans and
# applies (.github/workflows/release.yml). What the service runs on is committed here and
# reviewed like code; only per-account facts and the image tag are variables.
################################################################################

provider "aws" {
  region = var.region
}

module "sd_turbo" {
  source = "../.."

  name          = "sd-turbo"
  endpoint_type = "realtime"
  instance_type = "ml.g5.xlarge"
  # Two instances at least: SageMaker spreads a variant's instances over Availability Zones,
  # so one zone (or one instance) failing leaves the endpoint serving; a release starts the
  # new fleet at max_capacity and moves one instance's share first (the canary).
  min_capacity = 2
  max_capacity = 3

  create_endpoint = var.create_endpoint
  image_tag       = var.image_tag

  alarm_email_endpoints       = var.alarm_email_endpoints
  instance_price_usd_per_hour = var.instance_price_usd_per_hour

  # The role the release workflow assumes: pushes to ECR from main, applies from the
  # "production" environment (required reviewers), reads/writes this state.
  create_github_oidc_role    = true
  github_oidc_provider_arn   = var.github_oidc_provider_arn
  github_repository          = var.github_repository
  github_subject_format      = var.github_subject_format
  github_repository_owner_id = var.github_repository_owner_id
  github_repository_id       = var.github_repository_id
  github_branch              = "main"
  github_environment         = "production"
  terraform_state_bucket     = var.terraform_state_bucket
  terraform_state_key_prefix = var.terraform_state_key_prefix
}
