"""GPU detection: NVML (nvidia-ml-py) first, then ``nvidia-smi``, else none."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from typing import Any


def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs on this machine (empty when there are none)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            names = []
            for index in range(count):
                name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
                names.append(name.decode() if isinstance(name, bytes) else str(name))
            return names
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML raises its own error types when no driver is present
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_stats() -> list[dict[str, Any]]:
    """Per NVIDIA GPU through NVML: index, name, utilization (%), memory and temperature.

    Empty when NVML (the driver) is absent; a figure a device does not report is None.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no GPUs to report
        return []
    try:
        stats = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            entry: dict[str, Any] = {
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "utilization": None,
                "memory_used_bytes": None,
                "memory_total_bytes": None,
                "temperature_c": None,
            }
            with contextlib.suppress(Exception):
                entry["utilization"] = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            with contextlib.suppress(Exception):
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                entry["memory_used_bytes"] = int(memory.used)
                entry["memory_total_bytes"] = int(memory.total)
            with contextlib.suppress(Exception):
                entry["temperature_c"] = pynvml.nvmlDeviceGetTemperature(
                    handle, pynvml.NVML_TEMPERATURE_GPU
                )
            stats.append(entry)
        return stats
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
