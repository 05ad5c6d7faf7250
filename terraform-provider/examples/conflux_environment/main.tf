terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

# endpoint defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080.
provider "conflux" {}

resource "conflux_tenant" "acme" {
  name = "acme"
}

resource "conflux_app" "checkout" {
  tenant = conflux_tenant.acme.name
  name   = "checkout"
}

# Import: terraform import conflux_environment.prod acme/checkout/prod
resource "conflux_environment" "prod" {
  tenant      = conflux_tenant.acme.name
  app         = conflux_app.checkout.name
  name        = "prod"
  description = "Production"

  # Release changes (rules, publishes, stable rollbacks) become proposals that another
  # publisher approves. Without this block approval settings are left as they are;
  # removing it switches approval off.
  approval {
    required            = true
    min_approvals       = 1
    allow_self_approval = false
  }
}
