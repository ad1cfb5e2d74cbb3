"""Feeding a PyTorch ``IterableDataset`` from ``Lake.batches``: each DataLoader worker reads
its own shard of one pinned table version, in a reproducible shuffled order.

    python docs/examples/torch_batches.py --lake btlake-data/lake --market BINANCE

Every worker gets a disjoint shard (``shard=(worker_id, num_workers)``) and together they read
exactly what ``Lake.read`` returns; ``as_of`` pins the version all workers read (taken once,
in the main process), and ``shuffle_seed`` + the epoch make each epoch's order reproducible.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from btlake_pipelines import Lake


class TickDataset(IterableDataset):
    """(price, size) pairs of ``ticks`` as float32 tensors, one batch of rows per item."""

    def __init__(self, lake: str, *, version: int, seed: int = 0, epoch: int = 0,
                 batch_rows: int = 65_536, **filters) -> None:
        self.lake, self.version, self.seed, self.epoch = lake, version, seed, epoch
        self.batch_rows, self.filters = batch_rows, filters

    def __iter__(self):
        info = get_worker_info()
        shard = (0, 1) if info is None else (info.id, info.num_workers)
        batches = Lake(self.lake).batches(
            "ticks", batch_rows=self.batch_rows, shard=shard,
            shuffle_seed=self.seed * 1_000_003 + self.epoch, as_of=self.version,
            columns=["price", "size"], **self.filters)
        for batch in batches:
            columns = [batch.column(name).to_numpy(zero_copy_only=False)
                       for name in ("price", "size")]
            yield torch.from_numpy(np.stack(columns, axis=1).astype(np.float32))


def pinned_version(lake: str) -> int:
    """The latest version of ``ticks``, read once so every worker reads the same one."""
    return int(Lake(lake).history("ticks").column("version")[0].as_py())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", default=None)
    parser.add_argument("--market", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    lake = Lake(args.lake).uri
    dataset = TickDataset(lake, version=pinned_version(lake), seed=7,
                          **({"market": args.market} if args.market else {}))
    rows = 0
    for tensor in DataLoader(dataset, batch_size=None, num_workers=args.workers):
        rows += tensor.shape[0]
    print(f"{rows} rows through {args.workers} workers")


if __name__ == "__main__":
    main()
