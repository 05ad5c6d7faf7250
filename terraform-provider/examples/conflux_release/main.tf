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

resource "conflux_config" "app" {
  tenant      = conflux_tenant.acme.name
  application = conflux_app.checkout.name
  environment = conflux_environment.prod.name
  name        = "app.yaml"
  format      = "yaml"
}

# A new immutable version; changing content creates another one.
# is_stable = true points the default rule at it (every client gets it).
# Import: terraform import conflux_release.current acme/checkout/prod/app.yaml/1
resource "conflux_release" "current" {
  config_id   = conflux_config.app.id
  description = "first"
  is_stable   = true
  content     = <<-YAML
    timeout_ms: 500
    retries: 3
  YAML
}

output "version_id" {
  value = conflux_release.current.version_id
}
