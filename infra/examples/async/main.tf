provider "aws" {
  region = var.region
}

module "sd_turbo" {
  source = "../../"

  name          = var.name
  endpoint_type = "async"

  create_endpoint = var.create_endpoint
  image_tag       = var.image_tag
  image_uri       = var.image_uri
  instance_type   = var.instance_type
  min_capacity    = var.min_capacity
  max_capacity    = var.max_capacity

  # Async: requests queue in S3, the endpoint scales to zero when idle.
  async_max_concurrent_invocations_per_instance = 4
  async_object_expiration_days                  = 7

  model_id              = var.model_id
  model_revision        = var.model_revision
  container_environment = var.container_environment

  alarm_email_endpoints = var.alarm_email_endpoints

  create_github_oidc_role     = var.create_github_oidc_role
  create_github_oidc_provider = var.create_github_oidc_provider
  github_repository           = var.github_repository
  github_branch               = var.github_branch
  github_environment          = var.github_environment
  terraform_state_bucket      = var.terraform_state_bucket
  terraform_state_key_prefix  = var.terraform_state_key_prefix
  terraform_lock_table        = var.terraform_lock_table

  bucket_force_destroy = var.force_destroy
  ecr_force_delete     = var.force_destroy

  tags = var.tags
}
