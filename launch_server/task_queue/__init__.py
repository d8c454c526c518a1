"""The durable async task queue."""
