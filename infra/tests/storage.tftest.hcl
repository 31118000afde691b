# terraform test of the storage and messaging modules (mocked AWS provider): KMS key, ECR
# repository, async bucket, SNS topic.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
}

run "kms_key_rotates" {
  command = plan

  module {
    source = "./modules/kms"
  }

  variables {
    alias                 = "sd-turbo"
    description           = "test"
    log_group_name_prefix = "/aws/sagemaker/Endpoints/sd-turbo"
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation && aws_kms_key.this.deletion_window_in_days == 30 && aws_kms_alias.this.name == "alias/sd-turbo"
    error_message = "KMS key rotation must be on, 30-day deletion window, alias/<name>"
  }
  assert {
    condition = contains(flatten([
      for s in data.aws_iam_policy_document.this.statement : [for c in s.condition : c.values if c.variable == "kms:EncryptionContext:aws:logs:arn"]
    ]), "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/sd-turbo*")
    error_message = "CloudWatch Logs may use the key only for the endpoint's log groups"
  }
}

run "ecr_repository_is_immutable_scanned_encrypted" {
  command = plan

  module {
    source = "./modules/ecr"
  }

  variables {
    name = "sd-turbo"
  }

  assert {
    condition     = aws_ecr_repository.this.image_tag_mutability == "IMMUTABLE" && aws_ecr_repository.this.image_scanning_configuration[0].scan_on_push
    error_message = "ECR must be immutable and scan on push"
  }
  assert {
    condition     = aws_ecr_repository.this.encryption_configuration[0].encryption_type == "KMS" && aws_ecr_repository.this.encryption_configuration[0].kms_key == var.kms_key_arn
    error_message = "ECR must be encrypted with the stack key"
  }
  assert {
    condition     = [for r in jsondecode(aws_ecr_lifecycle_policy.this.policy).rules : r.selection.countNumber] == [7, 30]
    error_message = "untagged images expire after 7 days; 30 images are kept"
  }
}

run "async_bucket_is_private_encrypted_and_expires" {
  command = apply

  module {
    source = "./modules/async-bucket"
  }

  variables {
    bucket_name = "sd-turbo-123456789012-us-east-1"
  }

  assert {
    condition = (
      aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy &&
      aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets
    )
    error_message = "bucket public access must be blocked"
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "bucket must be SSE-KMS"
  }
  assert {
    condition     = toset([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.filter[0].prefix if try(r.expiration[0].days, 0) == 7]) == toset(["async-inputs/", "async-outputs/", "async-failures/"])
    error_message = "the async prefixes must expire after 7 days"
  }
  assert {
    condition     = output.prefixes == { input = "async-inputs/", output = "async-outputs/", failure = "async-failures/" }
    error_message = "the module owns the async key layout"
  }
}

run "bucket_prefix_must_end_with_a_slash" {
  command = plan

  module {
    source = "./modules/async-bucket"
  }

  variables {
    bucket_name = "sd-turbo-123456789012-us-east-1"
    prefixes    = { input = "in", output = "out/", failure = "fail/" }
  }

  expect_failures = [var.prefixes]
}

run "topic_is_encrypted" {
  command = plan

  module {
    source = "./modules/sns-topic"
  }

  variables {
    name            = "sd-turbo-alarms"
    email_endpoints = ["ops@example.com"]
  }

  assert {
    condition     = aws_sns_topic.this.kms_master_key_id == var.kms_key_arn && aws_sns_topic_subscription.email["ops@example.com"].protocol == "email"
    error_message = "topic must be KMS-encrypted, e-mail endpoints subscribed"
  }
}
