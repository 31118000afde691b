# A real-time endpoint with the stack's defaults (ml.g5.xlarge, 1-2 instances, canary
# deployments, alarms, dashboard). Region and credentials come from the environment
# (AWS_REGION, AWS_PROFILE...):
#
#   terraform init && terraform apply                    # ECR repository, key, role
#   docker push "$(terraform output -json sd_turbo | jq -r .ecr_repository_url):<tag>"
#   terraform apply -var image_tag=<tag>                 # the endpoint
#
# The production deployment (remote state, GitHub deploy role) is infra/live/production.

provider "aws" {}

module "sd_turbo" {
  source = "../.."

  name            = "sd-turbo-realtime"
  endpoint_type   = "realtime"
  create_endpoint = var.image_tag != null
  image_tag       = var.image_tag
}
