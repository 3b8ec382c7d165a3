"""Storages: where sessions live.

- `protocol`: what a manager needs from a storage (`SessionStorage`,
  `AsyncSessionStorage`) and the delete events (`DeleteReason`, `Listener`);
- `memory`: `InMemorySessionStorage`, the embedded default;
- `limits`: its capacity limits (`LimitPolicy`);
- `snapshot`: its snapshot files (`save`, `load`);
- `stats`: its counters (`StorageStats`).
"""
