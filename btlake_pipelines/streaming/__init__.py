"""Streamed market data (contract section 9): record batches pushed by feed handlers, checked
by the rules of section 1, micro-batched into Delta appends that carry ``txn`` actions so every
batch is stored exactly once across reconnects and restarts.

- :mod:`.rows`: one incoming record batch into the lake's shape, validated (a bad batch is
  refused whole, naming table, column and rule);
- :mod:`.writer`: :class:`~.writer.StreamWriter`, the micro-batching committer and its
  acknowledgements;
- :mod:`.commits`: the streamed commits since a version, for Dagster's materializations.
"""
