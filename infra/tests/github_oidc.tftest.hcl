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
}

run "existing_provider_branch_only_with_state" {
  command = plan

  module {
    source = "./modules/github-oidc"
  }

  variables {
    create_oidc_provider       = false
    github_environment         = null
    terraform_state_bucket     = "acme-tf-state"
    terraform_state_key_prefix = "sd-turbo/"
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.this) == 0 && length(data.aws_iam_openid_connect_provider.this) == 1
    error_message = "existing provider must be looked up, not created"
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
