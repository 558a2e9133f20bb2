"""Outbound webhooks: the plumbing under helpdesk/services/webhook*.py.

- `models`: WebhookEndpoint and WebhookDelivery (the outbox).
- `signing`: the body envelope, the `Earshot-Signature` header and
  `verify_signature`, the helper integrators copy.
- `crypto`: endpoint secrets encrypted at rest, bound to their tenant.
- `ssrf`: the guard every endpoint URL passes, at save time and at delivery time.
- `transport`: one guarded POST, pinned to the address the guard checked.
- `selectors`: the settings page's and the API's reads.
"""
