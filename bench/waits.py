"""What the PostgreSQL backends of the processes under test are doing, sampled: on the CPU,
waiting for a lock, for I/O, or idle in a transaction (waiting for Podium). Their connections
are told apart by the `application_name` the bench puts in their database URL."""

from __future__ import annotations

import threading
from collections import Counter
from types import TracebackType

import psycopg

from tests.services_up import POSTGRES_URL

SAMPLE_SECONDS = 0.02
STATES = """
    SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction (waiting for Podium)'
                ELSE coalesce(wait_event_type, 'CPU') END,
           CASE WHEN wait_event_type = 'Lock' THEN left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
                ELSE '' END
    FROM pg_stat_activity
    WHERE application_name = %s AND state IN ('active', 'idle in transaction')
"""


def with_application(url: str, application: str) -> str:
    """The PostgreSQL URL with its connections named `application`."""
    return f"{url}{'&' if '?' in url else '?'}application_name={application}"


class BackendStates:
    """`with BackendStates(application) as states:` samples the named connections' backends
    in a thread every SAMPLE_SECONDS; `states.line()` then tells each state's share."""

    def __init__(self, application: str) -> None:
        self._application = application
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.samples: Counter[str] = Counter()
        self.waiting: Counter[str] = Counter()
        """The statements found waiting for a lock, by their beginning."""

    def __enter__(self) -> BackendStates:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            while not self._stop.wait(SAMPLE_SECONDS):
                for state, statement in connection.execute(STATES, (self._application,)):
                    self.samples[state] += 1
                    if statement:
                        self.waiting[statement] += 1

    def line(self) -> str:
        total = sum(self.samples.values())
        if not total:
            return "no busy backend seen"
        shares = ", ".join(
            f"{state} {count / total:.0%}" for state, count in self.samples.most_common()
        )
        every = f"every {SAMPLE_SECONDS * 1e3:.0f} ms"
        line = f"{shares} (of {total:,} samples of a busy backend, {every})"
        if self.waiting:
            waits = "; ".join(
                f"{count} samples: {statement}" for statement, count in self.waiting.most_common(3)
            )
            line += f"; waiting for a lock, by statement: {waits}"
        return line
