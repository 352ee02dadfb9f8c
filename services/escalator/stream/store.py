"""Per-partition state stores: what the processor holds for the partitions it owns.

A store maps keys (ticket ids, incident window keys) to value bytes and keeps a :class:`Checkpoint` -- the
changelog offset up to which its content equals the changelog's accepted records, and the ownership marker in
force at that offset -- written atomically with the data. The processor writes a store only after the changelog
records of the same change are flushed and found contiguous (``changelog``), so a store never holds anything the
changelog does not.

Two kinds, chosen by ``ESCALATOR_STORE``:

* ``memory`` -- a dict per partition; everything is recovered from the changelog after a restart;
* ``rocksdb`` -- one RocksDB per partition (rocksdict, raw bytes) under ``<data_dir>/<app_id>/<name>/<partition>``,
  the checkpoint in a ``meta`` column family written in the same write batch; a restart reads only the changelog
  written after the checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = ["Checkpoint", "Marker", "MemoryStore", "PartitionStore", "RocksStore", "StoreFactory", "store_factory"]


@dataclass(frozen=True, slots=True)
class Marker:
    """An ownership claim in a changelog partition (see ``changelog``).

    offset: where the marker landed; writer: the unique id of this ownership period; generation: the consumer
    group generation of the claim (-1 unknown); seen: the offset of the accepted marker its writer had read when it
    claimed (-1: none)."""

    offset: int
    writer: str
    generation: int
    seen: int

    def to_json(self) -> list[Any]:
        return [self.offset, self.writer, self.generation, self.seen]

    @classmethod
    def from_json(cls, v: list[Any]) -> Marker:
        return cls(int(v[0]), str(v[1]), int(v[2]), int(v[3]))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The store equals the changelog's accepted records before ``offset``; ``marker`` was in force there."""

    offset: int = 0
    marker: Marker | None = None

    def encode(self) -> bytes:
        return orjson.dumps([self.offset, None if self.marker is None else self.marker.to_json()])

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        offset, marker = orjson.loads(raw)
        return cls(int(offset), None if marker is None else Marker.from_json(marker))


class PartitionStore(Protocol):
    """The state of one partition. Only the processor thread writes it; reads may come from another thread."""

    def get(self, key: str) -> bytes | None: ...

    def write(self, changes: Iterable[tuple[str, bytes | None]], checkpoint: Checkpoint) -> None:
        """Apply ``changes`` (``None`` deletes) and the checkpoint atomically."""
        ...

    def items(self) -> Iterator[tuple[str, bytes]]: ...

    def checkpoint(self) -> Checkpoint: ...

    def wipe(self) -> None:
        """Forget everything (checkpoint included): the next recovery reads the whole changelog."""
        ...

    def close(self) -> None: ...


class StoreFactory(Protocol):
    def __call__(self, name: str, partition: int) -> PartitionStore: ...


class MemoryStore:
    __slots__ = ("_checkpoint", "data")

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self._checkpoint = Checkpoint()

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def write(self, changes: Iterable[tuple[str, bytes | None]], checkpoint: Checkpoint) -> None:
        data = self.data
        for key, value in changes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._checkpoint = checkpoint

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.data.items()))  # a snapshot: the HTTP thread may read while the processor writes

    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def wipe(self) -> None:
        self.data = {}
        self._checkpoint = Checkpoint()

    def close(self) -> None:
        self.wipe()  # memory does not outlive its store


_CHECKPOINT_KEY = b"checkpoint"


class RocksStore:
    """One RocksDB per partition (rocksdict in raw mode); the checkpoint lives in the ``meta`` column family."""

    def __init__(self, path: Path, *, block_cache_mib: int = 64, write_buffer_mib: int = 16) -> None:
        self.path = path
        self._options = (block_cache_mib, write_buffer_mib)
        self._open()

    def _open(self) -> None:
        from rocksdict import BlockBasedOptions, Cache, Options, Rdict

        block_cache_mib, write_buffer_mib = self._options
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        options.set_write_buffer_size(write_buffer_mib * 1024 * 1024)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(block_cache_mib * 1024 * 1024))
        options.set_block_based_table_factory(table)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), options, column_families={"meta": Options(raw_mode=True)})
        self._meta_handle = self._db.get_column_family_handle("meta")
        meta = self._db.get_column_family("meta")
        try:
            raw = meta.get(_CHECKPOINT_KEY)
        finally:
            meta.close()
        self._checkpoint = Checkpoint() if raw is None else Checkpoint.decode(raw)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._db.get(key.encode())
        return value

    def write(self, changes: Iterable[tuple[str, bytes | None]], checkpoint: Checkpoint) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in changes:
            if value is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), value)
        batch.put(_CHECKPOINT_KEY, checkpoint.encode(), self._meta_handle)
        self._db.write(batch)
        self._checkpoint = checkpoint

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key, value in self._db.items():
            assert isinstance(key, bytes) and isinstance(value, bytes)  # raw mode
            yield key.decode(), value

    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def wipe(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._open()

    def close(self) -> None:
        del self._meta_handle
        self._db.close()


def store_factory(
    kind: str, data_dir: Path, app_id: str, *, block_cache_mib: int = 64, write_buffer_mib: int = 16
) -> StoreFactory:
    """The factory the processor opens its partition stores with (``memory`` or ``rocksdb``)."""

    def memory(name: str, partition: int) -> PartitionStore:
        return MemoryStore()

    def rocksdb(name: str, partition: int) -> PartitionStore:
        return RocksStore(
            data_dir / app_id / name / str(partition),
            block_cache_mib=block_cache_mib,
            write_buffer_mib=write_buffer_mib,
        )

    if kind == "memory":
        return memory
    if kind == "rocksdb":
        return rocksdb
    raise ValueError(f"unknown store kind {kind!r}: memory or rocksdb")
