"""Make sure the PostgreSQL the suite runs against is up (`make test` calls this first)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

import psycopg

POSTGRES_URL = os.environ.get("PODIUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_is_up() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def main() -> int:
    if postgres_is_up():
        return 0
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        print("PostgreSQL is not running and no cluster is installed", file=sys.stderr)
        return 1
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False
    )
    for _ in range(30):
        if postgres_is_up():
            return 0
        time.sleep(1)
    print(f"PostgreSQL did not come up at {POSTGRES_URL}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
