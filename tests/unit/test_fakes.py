"""What the in-memory ports do beyond the contract they share with the SQL adapters
(`tests/integration/test_ports_contract.py`): what they record, and one writer at a time."""

from __future__ import annotations

import pytest

from tests.fakes import FakePorts


def test_the_fake_counts_commits_and_records_the_tenants_each_unit_of_work_locked(
    ports: FakePorts,
) -> None:
    with ports.unit_of_work() as uow:
        uow.lock_tenants(["beta", "acme", "beta"])
        uow.commit()
    with ports.unit_of_work() as uow:
        uow.lock_tenants([])
    assert (ports.commits, ports.locked) == (1, [("acme", "beta"), ()])


def test_a_commit_over_another_units_commit_is_refused_rather_than_losing_it(
    ports: FakePorts,
) -> None:
    with ports.unit_of_work() as first:
        first.versions.bump({"first": None})
        with ports.unit_of_work() as second:
            second.versions.bump({"second": None})
            second.commit()
        with pytest.raises(RuntimeError, match="committed meanwhile"):
            first.commit()
    with ports.read() as read:
        assert read.state_versions() == {"second": (1, None)}


def test_a_fake_read_model_reads_the_state_of_the_moment_it_opened(ports: FakePorts) -> None:
    """Stricter than the SQL one, which the contract does not pin: SQLite reads one snapshot
    from the first query on, PostgreSQL (read committed) lets each query see what was
    committed before it."""
    with ports.read() as before:
        with ports.unit_of_work() as uow:
            uow.versions.bump({"acme": None})
            uow.commit()
        assert before.state_versions() == {}
    with ports.read() as after:
        assert after.state_versions() == {"acme": (1, None)}
