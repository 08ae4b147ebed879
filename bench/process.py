"""A running `podium serve` seen from outside, as an operator sees it: its folded-events
counter on /metrics and its CPU time and memory from /proc."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from service.config import Settings


def folded(metrics: str, settings: Settings) -> int:
    """Trip events the server has folded, from its Prometheus metrics."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    wanted = f'podium_events_folded_total{{topic="{settings.topic("trips")}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def cpu_seconds(pid: int | None) -> float:
    """CPU time the process has used (user and system), in seconds."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int | None) -> float:
    """Resident memory now (VmRSS), in MiB."""
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
