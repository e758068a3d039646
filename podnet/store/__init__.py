"""Revisioned, watchable key-value storage, shaped like etcd's API so that etcd can back it too.

podnet.store.base defines the interface; podnet.store.sqlite is the default backend.
"""

from podnet.store.base import (
    Compacted,
    Compare,
    Delete,
    Event,
    KeyValue,
    Put,
    RangeResult,
    Store,
    TxnResult,
    Watch,
    WatchClosed,
)

__all__ = ["Compacted", "Compare", "Delete", "Event", "KeyValue", "Put", "RangeResult", "Store",
           "TxnResult", "Watch", "WatchClosed"]
