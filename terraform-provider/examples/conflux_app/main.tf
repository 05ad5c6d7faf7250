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

# Import: terraform import conflux_app.checkout acme/checkout
resource "conflux_app" "checkout" {
  tenant      = conflux_tenant.acme.name
  name        = "checkout"
  description = "Checkout service"
}
