"""Rows in the stored order (``market, date`` and the table's ``sort_by``), cheaply.

Readers skip row groups by statistics only because stored rows are sorted inside each
partition (README, "Storage layout"), so every write sorts what it stores. Sorting ten million
tick rows with polars by ``(market, date, symbol, ts)`` compares strings and took 6-8 s, most
of a bulk ingest. The same order comes from small integer keys instead: each string column is
replaced by its rank among its distinct values (a handful of markets, a few thousand symbols),
every other key by its physical integer, and one stable ``numpy.lexsort`` over those keys
orders the rows (about 0.4 s for 5M rows), followed by one gather. Input that is already in
order is detected in one pass and not copied at all.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def is_sorted(df: pl.DataFrame, order: list[str]) -> bool:
    """Whether ``df`` is already in ``order`` (lexicographic, nulls anywhere: no), in one pass:
    an engine's file is usually sorted, and sorting 10M rows by strings costs seconds."""
    if df.height < 2:
        return True
    less, same = pl.lit(False), pl.lit(True)
    for c in order:
        prev = pl.col(c).shift(1)
        less = less | (same & (prev < pl.col(c)))
        same = same & (prev == pl.col(c))
    ok = (less | same).fill_null(False).slice(1)
    return bool(df.select(ok.all()).item())


def sort_rows(df: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    """``df`` sorted by ``order`` (the columns of ``order`` that it has), stably: rows equal on
    every key keep their input order, so sorted and unsorted copies of the same rows are stored
    identically. The result equals ``df.sort(order, maintain_order=True)``; rows already in
    order are returned as they are, without a copy."""
    order = [c for c in order if c in df.columns]
    if df.height < 2 or not order:
        return df
    keys = [_key(df.get_column(c)) for c in order]
    if any(k is None for k in keys):  # nulls or an unusual type: polars' own sort
        return df if is_sorted(df, order) else df.sort(order, maintain_order=True)
    keys = [k for k in keys if k is not None]
    settled = _ordered_tail(keys)
    if settled == len(keys):
        return df
    # rows already in order by the last keys (a feed's time) stay so through a stable sort
    # by the others: sort by (market, date, symbol), not by (market, date, symbol, ts)
    index = _stable_order(_combined(keys[:len(keys) - settled]))
    return df[pl.Series(index, dtype=pl.UInt32 if df.height < 2**32 else pl.UInt64)]


def _key(col: pl.Series) -> np.ndarray | None:
    """An integer (or float) array that orders like ``col``, or None when there is none cheap:
    a string column becomes each value's rank among the column's distinct values."""
    if col.null_count():
        return None
    dtype = col.dtype
    if dtype == pl.String:
        distinct = col.unique().sort()
        return col.cast(pl.Enum(distinct.to_list())).to_physical().to_numpy()
    if dtype == pl.Boolean:
        return col.cast(pl.UInt8).to_numpy()
    if dtype.is_integer() or dtype.is_float() or dtype.is_temporal():
        return col.to_physical().to_numpy()
    return None


def _combined(keys: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive integer keys folded into one int64 (mixed radix) while their value ranges
    multiply to less than 2**62: (market, date, symbol) become one key, so the sort and the
    order check look at two arrays instead of four."""
    out: list[np.ndarray] = []
    span = 0
    for k in keys:
        if k.dtype.kind not in "iub":
            out.append(k)
            span = 0
            continue
        lo, hi = int(k.min()), int(k.max())
        width = hi - lo + 1
        if width >= 2**62 or hi >= 2**63:
            out.append(k)
            span = 0
            continue
        shifted = k.astype(np.int64) - lo if lo else k.astype(np.int64, copy=False)
        if span and span * width < 2**62:
            out[-1] = out[-1] * width + shifted
            span *= width
        else:
            out.append(shifted)
            span = width
    return out


def _ordered_tail(keys: list[np.ndarray]) -> int:
    """How many of the last ``keys`` the rows are already in (lexicographic) order by: all of
    them for sorted input, the time column alone for a feed in time order."""
    if _in_order(_combined(keys)):
        return len(keys)
    last = keys[-1]
    if not bool((last[1:] >= last[:-1]).all()):
        return 0
    for n in range(2, len(keys)):
        if not _in_order(_combined(keys[len(keys) - n:])):
            return n - 1
    return len(keys) - 1


def _stable_order(keys: list[np.ndarray]) -> np.ndarray:
    """The stable sorting permutation by ``keys`` (lexicographic). One key of fewer than 2**16
    values (a few markets, days and symbols folded together) sorts by radix, about 3x faster
    than a merge sort of 64-bit integers."""
    if len(keys) > 1:
        return np.lexsort(list(reversed(keys)))  # lexsort's last key is the primary one
    key = keys[0]
    if key.dtype.kind in "iu" and len(key) and key.min() >= 0 and key.max() < 2**16:
        key = key.astype(np.uint16)
    return np.argsort(key, kind="stable")


def _in_order(keys: list[np.ndarray]) -> bool:
    """Whether rows are already non-decreasing by ``keys`` (lexicographic), in a few passes."""
    less = np.zeros(len(keys[0]) - 1, dtype=bool)
    same = np.ones(len(keys[0]) - 1, dtype=bool)
    for k in keys:
        prev, nxt = k[:-1], k[1:]
        less |= same & (prev < nxt)
        same &= prev == nxt
    return bool((less | same).all())
