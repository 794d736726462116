"""Scale-out across hosts: one broker host and three worker hosts as Linux network namespaces.

sudo .venv/bin/python bench/multihost.py [--jobs-per-host 60] [--sleep 0.25] [--json]

Needs root (``ip netns``). It builds, inside this machine only:

* a broker host (namespace ``PREFIX-b``) holding a bridge with 10.213.X.1/24 and a
  Valkey bound to that address;
* worker hosts ``PREFIX-h1`` … ``-h3``, each joined to the bridge by a veth pair
  (10.213.X.11, .12, .13), each running one ``conveyor worker`` (threads pool)
  against that single broker.

Then, from the broker host, it measures throughput of ``diag.sleep`` jobs with 1,
2 and 3 worker hosts, and finally cuts host 3's link (its bridge port goes down,
as a pulled cable) while it runs jobs: the time until every job it held is
handed back (taken by another host) is reported, and every job must end
``succeeded``. Everything is removed in a ``finally``, namespaces and processes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOSTS = 3
PORT = 6379


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    """The namespaces, bridge and links; :meth:`close` removes them."""

    prefix: str
    subnet: str
    hosts: int = HOSTS
    made: list[str] = field(default_factory=list)

    @property
    def broker_ns(self) -> str:
        """The broker host's namespace (it also holds the bridge)."""
        return f"{self.prefix}-b"

    @property
    def broker_ip(self) -> str:
        """The broker's address."""
        return f"{self.subnet}.1"

    def host_ns(self, index: int) -> str:
        """Worker host ``index``'s namespace (1-based)."""
        return f"{self.prefix}-h{index}"

    def port(self, index: int) -> str:
        """Worker host ``index``'s bridge port (in the broker's namespace)."""
        return f"{self.prefix}p{index}"

    def create(self) -> Network:
        """Make the broker host, the bridge and every worker host with its link."""
        _ip("netns", "add", self.broker_ns)
        self.made.append(self.broker_ns)
        _ip("-n", self.broker_ns, "link", "set", "lo", "up")
        _ip("-n", self.broker_ns, "link", "add", "sw0", "type", "bridge")
        _ip("-n", self.broker_ns, "addr", "add", f"{self.broker_ip}/24", "dev", "sw0")
        _ip("-n", self.broker_ns, "link", "set", "sw0", "up")
        for index in range(1, self.hosts + 1):
            ns, port, end = self.host_ns(index), self.port(index), f"{self.prefix}e{index}"
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Created in the broker's namespace, one end then moved to the host.
            _ip("-n", self.broker_ns, "link", "add", port, "type", "veth", "peer", "name", end)
            _ip("-n", self.broker_ns, "link", "set", end, "netns", ns)
            _ip("-n", self.broker_ns, "link", "set", port, "master", "sw0", "up")
            _ip("-n", ns, "addr", "add", f"{self.subnet}.{10 + index}/24", "dev", end)
            _ip("-n", ns, "link", "set", end, "up")
        return self

    def cut(self, index: int) -> None:
        """Pull host ``index``'s cable: its bridge port goes down, packets are dropped."""
        _ip("-n", self.broker_ns, "link", "set", self.port(index), "down")

    def close(self) -> None:
        """Delete every namespace made (their links and bridge go with them)."""
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        self.made.clear()


def can_make_namespaces() -> str | None:
    """None when namespaces and veth links can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns)"
    probe = f"cvprobe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True, timeout=30)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    except subprocess.CalledProcessError as exc:
        return f"ip netns add is not permitted here: {exc.stderr.decode().strip()}"
    try:
        subprocess.run(
            ["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except subprocess.CalledProcessError as exc:
        return f"veth links are not permitted here: {exc.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30, check=False)
    return None


@contextmanager
def network(hosts: int = HOSTS) -> Iterator[Network]:
    """A fresh broker host and ``hosts`` worker hosts, removed on exit."""
    # A per-run /24 inside 10.213.0.0/16, so parallel runs do not share addresses.
    subnet = f"10.213.{os.getpid() % 250 + 1}"
    net = Network(prefix=f"cv{os.getpid() % 100000}", subnet=subnet, hosts=hosts)
    try:
        yield net.create()
    finally:
        net.close()


def measure(
    jobs_per_host: int = 60,
    sleep_s: float = 0.25,
    threads: int = 4,
    heartbeat_s: float = 1.0,
    cut_jobs: int = 60,
    cut_sleep_s: float = 1.0,
) -> dict[str, Any]:
    """Build the hosts, run the driver on the broker host, tear everything down."""
    root = Path(__file__).resolve().parents[1]
    with network() as net, tempfile.TemporaryDirectory(prefix="conveyor-multihost-") as tmp:
        config = {
            "broker_ns": net.broker_ns,
            "broker_ip": net.broker_ip,
            "hosts": [net.host_ns(i) for i in range(1, net.hosts + 1)],
            "cut_port": net.port(net.hosts),
            "home": tmp,
            "jobs_per_host": jobs_per_host,
            "sleep_s": sleep_s,
            "threads": threads,
            "heartbeat_s": heartbeat_s,
            "cut_jobs": cut_jobs,
            "cut_sleep_s": cut_sleep_s,
        }
        # The driver runs on the broker host: it reaches the broker as the workers do.
        argv = ["ip", "netns", "exec", net.broker_ns, sys.executable, "-m"]
        argv += ["bench.multihost_driver", json.dumps(config)]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, cwd=root, check=False
        )
        out = Path(tmp) / "result.json"
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"driver failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main() -> None:
    """Command line: print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-per-host", type=int, default=60)
    parser.add_argument("--sleep", type=float, default=0.25, help="Seconds each job sleeps.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per worker.")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="CONVEYOR_HEARTBEAT_S.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = can_make_namespaces()
    if reason:
        sys.exit(f"cannot run: {reason}")
    result = measure(args.jobs_per_host, args.sleep, args.threads, args.heartbeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for phase in result["throughput"]:
        print(f"{phase['hosts']} host(s): {phase['jobs_per_s']:.1f} jobs/s ({phase['jobs']} jobs)")
    print(f"scaling 1 → 3 hosts: ×{result['scaling_ratio']:.2f}")
    cut = result["cut"]
    print(
        f"link cut: {cut['held_at_cut']} job(s) held by the cut host, handed back in "
        f"{cut['handed_back_s']:.1f} s; {cut['succeeded']}/{cut['jobs']} succeeded"
    )


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
