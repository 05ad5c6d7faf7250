terraform {
  required_providers {
    conflux = {
      source = "conflux/conflux"
    }
  }
}

# endpoint defaults to CONFLUX_ENDPOINT, then http://127.0.0.1:8080.
provider "conflux" {}

# Import: terraform import conflux_tenant.acme acme
resource "conflux_tenant" "acme" {
  name         = "acme"
  display_name = "Acme Corp"

  # Quotas left out keep the defaults; without this block quotas are not managed.
  quotas {
    max_apps    = 20
    max_configs = 200
  }
}
