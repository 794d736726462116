"""Scaling back ends: local processes, Kubernetes Deployments, docker compose services."""
