"""Kubernetes storage formats: the schema and the decoder."""
