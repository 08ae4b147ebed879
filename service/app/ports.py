"""What the use cases and the consumer loop expect of storage: its two failures that are not
the batch's fault."""

from __future__ import annotations


class OffsetMoved(RuntimeError):
    """Another consumer committed this partition since we read it: our batch is stale.

    Raised by the unit of work when a batch's offsets no longer start where the batch thought
    they did (a compare-and-set on the stored position). Nothing of the batch is written.
    """


class StorageUnavailable(RuntimeError):
    """The database failed in a way that says nothing about the batch: the connection was
    lost, a lock or statement timed out, a serialization failure. Retrying the same batch
    later is right; dead-lettering any of its records would be wrong."""
