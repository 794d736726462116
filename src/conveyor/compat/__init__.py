"""Drop-in compatibility with stock Celery producers, clients and tools (docs/celery.md)."""
