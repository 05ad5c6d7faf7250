terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

# endpoint defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080; token to CONFLUX_TOKEN.
# Creating tokens needs cluster_admin, such as a node's bootstrap token (<data-dir>/admin.token).
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

resource "conflux_release" "current" {
  config_id = conflux_config.app.id
  is_stable = true
  content   = "timeout_ms: 500\n"
}

# The checkout service's token: it may fetch and watch the configs of acme/checkout.
# The secret (token) is known only to the apply that creates the token and then kept in the
# state: protect the state. Every argument forces a new token (and a new secret).
# Import: terraform import conflux_service_token.checkout <id> (token is then null).
resource "conflux_service_token" "checkout" {
  name       = "checkout service (prod)"
  expires_at = "2030-01-01T00:00:00Z"
  bindings = [
    { role = "reader", scope = "${conflux_tenant.acme.name}/${conflux_app.checkout.name}" },
  ]
}

output "checkout_token_id" {
  value = conflux_service_token.checkout.id
}

# Hand it to the service, e.g. terraform output -raw checkout_token > checkout.token
output "checkout_token" {
  value     = conflux_service_token.checkout.token
  sensitive = true
}
