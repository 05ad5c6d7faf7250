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

resource "conflux_environment" "prod" {
  tenant = conflux_tenant.acme.name
  app    = conflux_app.checkout.name
  name   = "prod"
}

# Import: terraform import conflux_config.app acme/checkout/prod/app.yaml
resource "conflux_config" "app" {
  tenant      = conflux_tenant.acme.name
  application = conflux_app.checkout.name
  environment = conflux_environment.prod.name
  name        = "app.yaml"
  format      = "yaml"
  description = "Checkout settings"

  # Every new version must satisfy this JSON Schema.
  schema = jsonencode({
    type     = "object"
    required = ["timeout_ms"]
    properties = {
      timeout_ms = { type = "integer" }
    }
  })

  # Keep the 10 newest versions, or anything younger than 30 days.
  retention_policy {
    strategy = "or"
    rule {
      type = "count"
      keep = 10
    }
    rule {
      type = "days"
      keep = 30
    }
  }
}
