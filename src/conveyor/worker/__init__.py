"""The worker side: the Celery task adapter, job execution and the worker process."""
