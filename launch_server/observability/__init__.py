"""Metrics: what replicas and servers count, and how the servers expose it to Prometheus."""
