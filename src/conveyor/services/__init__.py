"""The platform services beside the workers: the periodic scheduler (``beat``), dead-letter
alerts, the local stack's supervisor (``conveyor up``), API keys and ``conveyor doctor``."""
