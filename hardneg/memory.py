"""Keeping a long build's resident set to what it holds: freed memory given back, and file pages read through
a memory map left behind with the map."""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import gc
import mmap
import sys

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
        _libc().malloc_trim(0)
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


def drop_file_pages(data: pa.Table | pa.RecordBatch | pa.ChunkedArray | pa.Array) -> None:
    """Take the pages of ``data``'s buffers that are read through a read-only file map out of this process's
    resident set (``madvise(MADV_DONTNEED)``): they stay in the page cache, and a later read maps them again
    from there. For a step that reads a mapped table once, in order (tokenising a pool, copying a table),
    so that what it has read does not pile up beside what it builds. Only ranges inside a read-only map of
    a file are touched (never anonymous or writable memory, whose content the call would drop); elsewhere
    than Linux, nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    maps = _read_only_file_maps()
    if not maps:
        return
    page = mmap.PAGESIZE
    ranges = []
    for buf in _buffers(data):
        if buf is None or buf.size == 0:
            continue
        start, end = buf.address, buf.address + buf.size
        i = bisect.bisect_right(maps, (start, float("inf"))) - 1
        if i < 0 or not maps[i][0] <= start < maps[i][1]:
            continue  # not a file map: left alone
        lo, hi = maps[i]
        ranges.append((max(lo, start - start % page), min(hi, end + (-end) % page)))
    merged: list[list[int]] = []
    for first, last in sorted(ranges):  # one call per run of adjacent buffers (a column of many chunks)
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    libc = _libc()
    for first, last in merged:
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, found once (``find_library`` runs ``ldconfig``: not once per block)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _buffers(data) -> list:
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return [b for column in data.columns for b in _buffers(column)]
    if isinstance(data, pa.ChunkedArray):
        return [b for chunk in data.chunks for b in chunk.buffers()]
    return data.buffers()


def _read_only_file_maps() -> list[tuple[int, int]]:
    """(start, end) of each read-only map of a file in this process, in address order."""
    maps = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) < 6 or "w" in parts[1] or not parts[5].startswith("/"):
                    continue  # writable, anonymous or a pseudo-map ([heap], [stack], ...)
                lo, hi = parts[0].split("-")
                maps.append((int(lo, 16), int(hi, 16)))
    except OSError:
        return []
    return sorted(maps)
