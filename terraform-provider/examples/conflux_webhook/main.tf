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

variable "webhook_secret" {
  type      = string
  sensitive = true
  default   = "change-me-to-a-long-random-secret"
}

# Deliveries are POSTed to url, signed with X-Conflux-Signature-256 (HMAC-SHA256 of the body
# with the secret). Every argument replaces the webhook (there is no update).
# Import: terraform import conflux_webhook.chatops <webhook id>
# (the secret cannot be read back: the next apply replaces the webhook to set it, unless
# lifecycle { ignore_changes = [secret] } keeps the imported one).
resource "conflux_webhook" "chatops" {
  name   = "chat-ops approvals"
  url    = "http://127.0.0.1:9/conflux-events"
  tenant = conflux_tenant.acme.name
  events = ["proposal.created", "proposal.executed", "release.changed"]
  secret = var.webhook_secret
}

output "webhook_id" {
  value = conflux_webhook.chatops.id
}
