# terraform test of modules/github-oidc (mocked AWS provider): trust pinned to the repository's
# branch and environment, least-privilege permissions.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                = "sd-turbo"
  github_repository   = "acme/sd-turbo-serve"
  endpoint_name       = "sd-turbo"
  ecr_repository_arns = ["arn:aws:ecr:us-east-1:123456789012:repository/sd-turbo"]
  execution_role_arn  = "arn:aws:iam::123456789012:role/sd-turbo-sagemaker-execution"
  kms_key_arn         = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  log_group_name      = "/aws/sagemaker/Endpoints/sd-turbo"
}

run "new_provider_branch_and_environment" {
  command = apply

  module {
    source = "./modules/github-oidc"
  }

  assert {
    condition     = aws_iam_openid_connect_provider.this[0].url == "https://token.actions.githubusercontent.com" && aws_iam_openid_connect_provider.this[0].client_id_list == toset(["sts.amazonaws.com"])
    error_message = "OIDC provider wrong"
  }
  assert {
    condition = toset(flatten([
      for c in data.aws_iam_policy_document.assume.statement[0].condition : c.values if c.variable == "token.actions.githubusercontent.com:sub"
      ])) == toset([
      "repo:acme/sd-turbo-serve:ref:refs/heads/main",
      "repo:acme/sd-turbo-serve:environment:production",
    ])
    error_message = "trust policy must be pinned to the repository's main branch and production environment"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.this.statement : !(contains(s.resources, "*") && anytrue([for a in s.actions : strcontains(a, "*")]))
    ])
    error_message = "no statement may combine wildcard actions and resources"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.this.statement : s.resources if s.sid == "Dashboard"]) == toset(["arn:aws:cloudwatch::123456789012:dashboard/sd-turbo"])
    error_message = "the deploy role manages the stack's dashboard only"
  }
  assert {
    condition     = !contains([for s in data.aws_iam_policy_document.this.statement : s.sid], "StateObjects")
    error_message = "no state permissions without terraform_state_bucket"
  }
  assert {
    condition = length(setintersection(
      toset(flatten([for s in data.aws_iam_policy_document.this.statement : s.actions if contains(s.resources, var.execution_role_arn)])),
      toset(["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRole"]),
    )) == 0
    error_message = "the deploy role must not write the execution role it passes to SageMaker (privilege escalation)"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.this.statement : s.resources if s.sid == "TargetTrackingAlarms"]) == toset(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:TargetTracking-endpoint/sd-turbo/variant/*"])
    error_message = "target tracking's own alarms, for the stack's endpoint only"
  }
  assert {
    condition     = contains(one([for s in data.aws_iam_policy_document.this.statement : s.actions if s.sid == "SageMakerStack"]), "sagemaker:UpdateEndpointWeightsAndCapacities")
    error_message = "RegisterScalableTarget checks sagemaker:UpdateEndpointWeightsAndCapacities on the caller"
  }
}

run "existing_provider_branch_only_with_state" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    oidc_provider_arn          = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    github_environment         = null
    terraform_state_bucket     = "acme-tf-state"
    terraform_state_key_prefix = "sd-turbo/"
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.this) == 0 && output.oidc_provider_arn == "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    error_message = "an existing provider is used by its ARN, not created (and not looked up: no list permission)"
  }
  assert {
    condition     = !contains(flatten([for s in data.aws_iam_policy_document.this.statement : s.actions]), "iam:ListOpenIDConnectProviders")
    error_message = "the deploy role needs no iam:ListOpenIDConnectProviders"
  }
  assert {
    condition     = output.trusted_subjects == ["repo:acme/sd-turbo-serve:ref:refs/heads/main"]
    error_message = "without an environment only the branch is trusted"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.this.statement : s.resources if s.sid == "StateObjects"]) == toset(["arn:aws:s3:::acme-tf-state/sd-turbo/*"])
    error_message = "state access must be limited to the key prefix"
  }
}

run "immutable_subject_claims" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    subject_format             = "immutable"
    github_repository_owner_id = "123456"
    github_repository_id       = "456789"
  }

  assert {
    condition = toset(output.trusted_subjects) == toset([
      "repo:acme@123456/sd-turbo-serve@456789:ref:refs/heads/main",
      "repo:acme@123456/sd-turbo-serve@456789:environment:production",
    ])
    error_message = "immutable subject claims name owner and repository with their ids"
  }
}

run "immutable_subject_claims_need_the_ids" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    subject_format = "immutable"
  }

  expect_failures = [var.subject_format]
}

run "subject_format_is_validated" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    subject_format = "ids"
  }

  expect_failures = [var.subject_format]
}

run "existing_provider_arn_is_validated" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/accounts.google.com"
  }

  expect_failures = [var.oidc_provider_arn]
}
