"""Cluster credentials and secrets at rest: the certificate authority, ServiceAccount token signing
and the encryption of stored Secrets.

A low layer (beside `nbkube.api`) so that the API server, the node agents, the store wiring and the
CLI can all use the same keys without importing each other.
"""
