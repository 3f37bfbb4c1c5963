"""LMDB storage: environment, key layout, record codec and op log."""

from vdb.storage.env import Store

__all__ = ["Store"]
