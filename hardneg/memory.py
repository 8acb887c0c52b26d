"""Keeping a long build's resident set to what it holds: freed memory given back, and file pages read through
a memory map left behind with the map."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import pyarrow as pa
from datasets import Dataset


def release_freed_memory() -> None:
    """Give the memory freed so far back to the system: a collection, Arrow's allocator's unused memory
    (``MemoryPool.release_unused``) and glibc's ``malloc_trim`` (an index of millions of postings leaves its
    freed pages in the C heap otherwise, and the next step adds to them). Where the C library has no
    ``malloc_trim``, that part does nothing."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def remapped(ds: Dataset) -> Dataset:
    """The same rows over a new memory map of the table's files (no copy). A file page read through a map stays
    in the process's resident set while the map lives: a step given its own map (each build method gets one of
    the queries and of the pool) takes the pages it read away with it, so the next step (an index of millions
    of postings) does not sit on top of them. (A page read through two maps counts twice in the resident set.)
    An in-memory table is returned as it is."""
    from datasets.table import MemoryMappedTable, concat_tables, list_table_cache_files

    files = list_table_cache_files(ds.data)  # the table's own files (an indices mapping may have one too)
    if not files:
        return ds
    table = concat_tables([MemoryMappedTable.from_file(f) for f in files])
    return Dataset(
        table, info=ds.info.copy(), split=ds.split, indices_table=ds._indices, fingerprint=ds._fingerprint
    )
