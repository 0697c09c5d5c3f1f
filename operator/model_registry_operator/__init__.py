"""Kubernetes operator for Model Registry."""
