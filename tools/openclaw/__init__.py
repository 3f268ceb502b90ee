"""Drives OpenClaw itself, so that tests and benchmarks read state OpenClaw's own code wrote.

- ``fixture``: installs OpenClaw 2026.9.6 (and a Node that runs it) under the cache, runs its gateway, CLI and
  doctor, and builds the cached SQLite-era state dirs; ``chat.mjs`` is the chat client it drives the
  gateway with.
- ``legacy``: the same for OpenClaw 2026.7.35, the JSONL era.
- ``live``: a state held mid-turn (a running window, a queued input) while tests look at it.
- ``checkpoint``: a compaction checkpoint written by 2026.7.35 and migrated by 2026.9.6's doctor.
- ``rewrite``: chats 2026.9.6 wrote, then truncated (``sessions compact --max-lines``) and deleted, before
  and after that rewrite.
"""
