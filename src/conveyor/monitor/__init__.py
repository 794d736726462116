"""Monitoring of hosts and workers: GPUs (more to come: resources, stalled jobs)."""
