################################################################################
# Private network of the endpoint (optional, create_vpc): a VPC with one private subnet in each
# of two Availability Zones, no internet or NAT gateway, and VPC endpoints for what SageMaker
# and the container reach: S3 (gateway), ECR API and Docker registry, CloudWatch Logs, STS and
# the SageMaker runtime (interface, private DNS). The model runs with network isolation in it.
#
# SageMaker places a variant's instances across the subnets' zones; with at least two instances
# (production's min_capacity) one zone failing leaves the endpoint serving.
################################################################################

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Used only when availability_zones is null (then the region's first two available zones are taken); pin zones by setting availability_zones.
  state = "available"
}

locals {
  region = data.aws_region.current.name
  zones  = var.availability_zones != null ? var.availability_zones : slice(data.aws_availability_zones.available.names, 0, 2)
  interface_services = {
    "ecr-api"           = "com.amazonaws.${local.region}.ecr.api"
    "ecr-dkr"           = "com.amazonaws.${local.region}.ecr.dkr"
    "logs"              = "com.amazonaws.${local.region}.logs"
    "sts"               = "com.amazonaws.${local.region}.sts"
    "sagemaker-runtime" = "com.amazonaws.${local.region}.sagemaker.runtime"
  }
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:No VPC flow logs by default: the VPC carries only SageMaker's own traffic to AWS endpoints (no internet route); add flow logs where an audit requires them (they cost per GB).
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true # private DNS of the interface endpoints
  tags                 = merge(var.tags, { Name = var.name })
}

# The default security group allows nothing (nothing uses it).
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-closed" })
}

resource "aws_subnet" "private" {
  count = length(local.zones)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[count.index]
  cidr_block        = cidrsubnet(var.cidr_block, 4, count.index)
  tags              = merge(var.tags, { Name = "${var.name}-private-${local.zones[count.index]}" })
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

resource "aws_security_group" "model" {
  #checkov:skip=CKV2_AWS_5:Attached by SageMaker: the stack passes it in the model's vpc_config (modules/sagemaker-endpoint), which checkov does not follow across modules.
  name        = "${var.name}-model"
  description = "SageMaker model containers of ${var.name}: HTTPS to the VPC endpoints only"
  vpc_id      = aws_vpc.this.id
  tags        = var.tags
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-vpc-endpoints"
  description = "Interface VPC endpoints of ${var.name}: HTTPS from the model containers"
  vpc_id      = aws_vpc.this.id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "model_to_endpoints" {
  security_group_id            = aws_security_group.model.id
  description                  = "HTTPS to the interface endpoints (ECR, Logs, STS, SageMaker runtime)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "model_to_s3" {
  security_group_id = aws_security_group.model.id
  description       = "HTTPS to S3 through the gateway endpoint (image layers, model data)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_model" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the model containers"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.model.id
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_services

  vpc_id              = aws_vpc.this.id
  service_name        = each.value
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name}-${each.key}" })
}
