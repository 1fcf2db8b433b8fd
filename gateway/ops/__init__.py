"""Operator commands run beside the gateway: ``scim-gateway check`` and ``scim-gateway reconcile``."""
