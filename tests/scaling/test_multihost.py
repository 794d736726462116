"""Scale-out across hosts: 1 broker host + 3 worker hosts as network namespaces.

Runs bench/multihost.py: throughput with 1, 2 and 3 worker hosts against one
Valkey, then one host's link is cut while it runs jobs.
"""

from __future__ import annotations

import pytest
from bench.multihost import can_make_namespaces, measure

REASON = can_make_namespaces()


@pytest.mark.e2e
@pytest.mark.timeout(400)
@pytest.mark.skipif(REASON is not None, reason=f"no network namespaces: {REASON}")
def test_three_hosts_scale_and_a_cut_hosts_jobs_come_back() -> None:
    result = measure(jobs_per_host=60, sleep_s=0.25, threads=4, heartbeat_s=1.0)
    rates = [phase["jobs_per_s"] for phase in result["throughput"]]
    assert rates[0] < rates[1] < rates[2], rates
    # Ideal is 3 times; leave room for a loaded 2-core machine.
    assert result["scaling_ratio"] >= 2.0, result
    cut = result["cut"]
    assert cut["held_at_cut"] >= 1, cut
    assert cut["handed_back_s"] < 60, cut
    assert cut["succeeded"] == cut["jobs"], cut
