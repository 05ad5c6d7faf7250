terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

# endpoint defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080; token to CONFLUX_TOKEN.
provider "conflux" {}

resource "conflux_tenant" "acme" {
  name = "acme"
}

resource "conflux_app" "checkout" {
  tenant = conflux_tenant.acme.name
  name   = "checkout"
}

# A CI pipeline's token, without bindings of its own...
resource "conflux_service_token" "ci" {
  name = "ci pipeline"
}

# ...gets publisher (publish, release, roll back, and everything an editor, viewer and
# reader may) on the checkout app. Roles: reader, viewer, editor, publisher, tenant_admin,
# cluster_admin. Scopes: "*", "tenant", "tenant/app" or "tenant/app/env".
# Every argument forces a new binding.
# Import: terraform import conflux_role_binding.ci_publisher <binding id>
resource "conflux_role_binding" "ci_publisher" {
  principal = "token:${conflux_service_token.ci.id}"
  role      = "publisher"
  scope     = "${conflux_tenant.acme.name}/${conflux_app.checkout.name}"
}

output "ci_token" {
  value     = conflux_service_token.ci.token
  sensitive = true
}
