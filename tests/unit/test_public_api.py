import conveyor

EXPECTED = {
    "Conveyor",
    "Job",
    "JobState",
    "JobContext",
    "JobDefinition",
    "Middleware",
    "Outcome",
    "Defer",
    "SkipJob",
    "Profile",
    "Queue",
    "Settings",
    "Topology",
    "BrokerError",
    "ConfigurationError",
    "ConveyorError",
    "InvalidSubmission",
    "JobCancelled",
    "JobError",
    "JobTimeoutError",
    "NotFound",
    "PayloadInvalid",
    "PermanentError",
    "SoftTimeLimitExceeded",
    "StoreError",
    "TimeLimitExceeded",
    "TransientError",
    "UnknownJobType",
    "__version__",
}


def test_public_surface_is_pinned() -> None:
    assert set(conveyor.__all__) == EXPECTED
    for name in conveyor.__all__:
        assert hasattr(conveyor, name), name
