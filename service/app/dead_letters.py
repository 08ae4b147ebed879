"""The operator's dead-letter tools: list what was kept, and replay it through the folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from service.app.ingest import Applied, Batch, Describe, apply_batch, apply_isolating
from service.app.ports import Letter, LetterFilter, ReadModel, UnitsOfWork
from service.app.records import DeadLetter, Received, Record, split
from service.app.shards import Buckets
from service.domain.rules import Rules


def list_letters(read: ReadModel, which: LetterFilter) -> list[Letter]:
    return read.dead_letters(which)


def replay(
    unit_of_work: UnitsOfWork,
    letters: Sequence[Letter],
    decode: Callable[[Record], Received | DeadLetter],
    describe: Describe,
    *,
    rules: Rules,
    consumer_group: str,
    now: datetime,
    buckets: Buckets,
    dry_run: bool = False,
) -> Applied:
    """Decode and fold the letters again, in one transaction. A letter that now passes is
    applied once and leaves the store; one that fails again stays, with the new reason.
    Replaying a letter twice is safe: the second time it is no longer in the store. Letters
    whose fold still fails are found as the consumer loop finds them (`apply_isolating`) and
    stay, the others are applied (all of them may fail: they stay, nothing stalls). With
    `dry_run` the transaction is rolled back: the outcome says what would happen."""
    received, dead = split([letter.record for letter in letters], decode)
    batch = Batch(
        received=received,
        dead=dead,
        replaying={letter.record.id: letter.id for letter in letters},
    )

    def apply(batch: Batch, dry: bool) -> Applied:
        return apply_batch(
            unit_of_work,
            batch,
            rules=rules,
            consumer_group=consumer_group,
            now=now,
            buckets=buckets,
            dry_run=dry,
        )

    return apply_isolating(apply, batch, describe, dry_run=dry_run, every_record_may_fail=True)
