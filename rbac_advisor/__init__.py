"""Kubernetes RBAC least privilege from audit logs."""

__version__ = "0.1.0"
