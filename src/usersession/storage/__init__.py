"""Storages: where sessions live.

- `protocol`: what a manager needs from a storage (`SessionStorage`,
  `AsyncSessionStorage`) and the delete events (`DeleteReason`, `Listener`);
- `memory`: `InMemorySessionStorage`, the embedded default.
"""
