# An asynchronous endpoint: requests are uploaded to S3 and queued with InvokeEndpointAsync,
# results land in S3 with an SNS notification, and the endpoint scales to zero instances when
# the queue is empty (the first request after idle waits for an instance to start). Region and
# credentials come from the environment:
#
#   terraform init && terraform apply                    # ECR repository, key, bucket, role
#   docker push "$(terraform output -json sd_turbo | jq -r .ecr_repository_url):<tag>"
#   terraform apply -var image_tag=<tag>                 # the endpoint

provider "aws" {}

module "sd_turbo" {
  source = "../.."

  name            = "sd-turbo-async"
  endpoint_type   = "async"
  create_endpoint = var.image_tag != null
  image_tag       = var.image_tag
}
