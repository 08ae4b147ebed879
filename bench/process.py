"""A running `podium serve` seen from outside, as an operator sees it: its folded-events
counter on /metrics and its CPU time and memory from /proc."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path

from service.config import Settings


def folded(metrics: str, settings: Settings) -> int:
    """Trip events the server has folded, from its Prometheus metrics."""
    series = f'podium_events_folded_total{{topic="{settings.topic("trips")}"}}'
    return int(metric(metrics, series))


def folded_and_fetched(metrics: str, settings: Settings) -> tuple[int, int]:
    """From one reading of the server's metrics: trip events folded, and trip records fetched
    and not folded yet (`progress_of`)."""
    text = scraped(metrics, "podium_events_folded_total", "podium_consumer_lag")
    return progress_of(text, settings.topic("trips"))


def progress_of(metrics_text: str, topic: str) -> tuple[int, int]:
    """Events of `topic` folded, and its consumer lag summed over its partitions (above 0 once
    the first fetch has answered), from Prometheus's text format."""
    label = f'topic="{topic}"'
    folded_series = f"podium_events_folded_total{{{label}}} "
    folded = lag = 0
    for line in metrics_text.splitlines():
        if line.startswith(folded_series):
            folded = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("podium_consumer_lag{") and label in line:
            lag += int(float(line.rsplit(" ", 1)[1]))
    return folded, lag


def caught_up(metrics: str) -> bool:
    """Whether the server's consumers have joined their group and read the topics up to where
    they ended at the start."""
    return metric(metrics, "podium_ingest_caught_up") == 1


def metric(metrics: str, series: str) -> float:
    """One series of the server's Prometheus metrics (0 until it has one)."""
    text = scraped(metrics, series.partition("{")[0])
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def scraped(metrics: str, *names: str) -> str:
    """The server's Prometheus metrics of these names alone (`name[]`, prometheus_client's
    own filter): the bench reads them every 50 ms, and a whole scrape costs `podium serve`
    2.4-3.2 ms of CPU (1.5-2 us per folded event at these polls, which the peer does not
    pay; bench/RESULTS.md)."""
    query = urllib.parse.urlencode([("name[]", name) for name in names])
    with urllib.request.urlopen(f"http://{metrics}/metrics?{query}", timeout=5) as answer:
        text: str = answer.read().decode()
    return text


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


def database_cpu_seconds() -> float:
    """CPU time of the local PostgreSQL server's processes (each backend, and what the
    postmaster has collected of those that ended), in seconds; NaN if none runs here."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if name == "postgres":
            found = True
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK") if found else float("nan")
