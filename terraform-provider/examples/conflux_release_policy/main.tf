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
  name        = "app.json"
  format      = "json"
}

resource "conflux_release" "stable" {
  config_id = conflux_config.app.id
  content   = jsonencode({ timeout_ms = 500 })
}

resource "conflux_release" "canary" {
  config_id = conflux_config.app.id
  content   = jsonencode({ timeout_ms = 200 })
}

# The whole rule list of the config: everyone gets "stable", clients labelled
# canary=true get "canary". Import: terraform import conflux_release_policy.app acme/checkout/prod/app.json
resource "conflux_release_policy" "app" {
  config_id = conflux_config.app.id

  rule {
    version_id = conflux_release.stable.version_id
  }

  rule {
    labels     = { canary = "true" }
    version_id = conflux_release.canary.version_id
    priority   = 100
  }
}

# What a canary client receives.
data "conflux_resolved_version" "canary" {
  config_id  = conflux_release_policy.app.config_id
  labels     = { canary = "true" }
  depends_on = [conflux_release_policy.app]
}

output "canary_gets" {
  value = data.conflux_resolved_version.canary.version_id
}
