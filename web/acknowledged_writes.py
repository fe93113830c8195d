"""The writes this process has acknowledged, per topic partition: the read side of the same process
waits for them before answering a read that carries no consistency token, so a client that reads
from the instance it wrote to sees its own writes without sending anything."""

from __future__ import annotations


class AcknowledgedWrites:
    def __init__(self) -> None:
        self._ends: dict[str, dict[int, int]] = {}

    def record(self, topic: str, partition: int, offset: int) -> None:
        ends = self._ends.setdefault(topic, {})
        if offset > ends.get(partition, -1):
            ends[partition] = offset

    def last_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset of the last event acknowledged there."""
        return self._ends.get(topic, {})


# One per process: the command side records, the query side reads (both sides may share a process).
ACKNOWLEDGED_WRITES = AcknowledgedWrites()
