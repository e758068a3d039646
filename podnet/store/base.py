"""The storage interface: etcd's data model, cut down to what an API server needs.

- Every successful transaction that writes gets the next revision; all its writes share it.
- A key remembers the revision that created it (create_revision) and last changed it
  (mod_revision). Kubernetes' resourceVersion is the mod_revision.
- Reads can be made at the current revision or at an older one that is not yet compacted.
- A watch delivers every change under a prefix from a start revision on, in revision order;
  asking for a compacted revision raises Compacted (the API turns it into 410 Gone).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal


class Compacted(Exception):
    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} has been compacted (compacted up to {compacted})")
        self.requested = requested
        self.compacted = compacted


class WatchClosed(Exception):
    """The store ended a watch (it fell too far behind, or the store is closing)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["PUT", "DELETE"]
    kv: KeyValue  # for DELETE: the last value, with mod_revision = the deleting revision
    prev: KeyValue | None  # the value before this event, if any

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class Compare:
    """Succeeds when the key's mod_revision equals `mod_revision`; 0 means "does not exist"."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the new revision on success; the current one on failure
    # On failure: the current state of each compared key (None when absent), so callers can
    # report a conflict without another read.
    current: dict[str, KeyValue | None]


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int  # the revision the read was made at
    more: bool  # there are more keys after the last one returned (limit was hit)


class Watch(abc.ABC):
    """An open watch: iterate to get batches of events (one batch per revision or more).

    An empty batch is a progress notification (etcd's progress notify): it comes when the watch
    has been idle for a while and means every change up to the store's current revision has
    been delivered. It lets callers send bookmarks and notice that a client went away."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[list[Event]]: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class Store(abc.ABC):
    @abc.abstractmethod
    async def get(self, key: str, revision: int = 0) -> KeyValue | None: ...

    @abc.abstractmethod
    async def range(self, prefix: str, *, revision: int = 0, limit: int = 0,
                    start_after: str = "") -> RangeResult:
        """Keys starting with `prefix`, in key order, at `revision` (0 = current)."""

    @abc.abstractmethod
    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        """If every compare holds, apply all ops atomically at one new revision."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> Watch:
        """Changes under `prefix` with revision >= start_revision (0 = from now on).
        Raises Compacted if start_revision is at or below the compacted revision."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and before `revision`; reads and watches there become Compacted."""

    @property
    @abc.abstractmethod
    def revision(self) -> int: ...

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    def end_watches(self) -> None:
        """End every open watch (their iterators raise WatchClosed), e.g. before shutdown."""

    @abc.abstractmethod
    async def close(self) -> None: ...


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
