"""zstd, as OpenClaw writes it (its deletion exports, cold archives and large events). Airflow-free.

OpenClaw's export and cold-archive frames carry no content size, so they are read as streams.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zstandard

CHUNK_BYTES = 1 << 20


class ZstError(Exception):
    """The bytes are not a zstd stream this package can read."""


def decompress_stream(packed: bytes) -> bytes:
    """All of one (or several concatenated) zstd frames, with or without a content size."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=True) as reader:
            return reader.read()
    except zstandard.ZstdError as exc:
        raise ZstError(str(exc)) from None


def decompress_file(source: Path, dest: Path) -> int:
    """Decompress a ``.zst`` export to ``dest`` (mode 0600, the source's mtime); returns its size."""
    info = source.stat()
    size = 0
    partial = dest.with_name(dest.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as packed:
            reader = zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=True)
            while chunk := reader.read(CHUNK_BYTES):
                size += len(chunk)
                out.write(chunk)
            os.fsync(out.fileno())
        os.utime(partial, ns=(info.st_mtime_ns, info.st_mtime_ns))
        os.replace(partial, dest)
    except zstandard.ZstdError as exc:
        partial.unlink(missing_ok=True)
        raise ZstError(f"{source.name} is not a readable zstd export: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return size


@contextmanager
def lines(source: Path) -> Iterator[Iterator[bytes]]:
    """The lines of a ``.zst`` export, decompressed as a stream (each with its ``\\n``)."""
    with source.open("rb") as packed:
        reader = zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=True)
        try:
            yield iter(io.BufferedReader(reader, CHUNK_BYTES))
        except zstandard.ZstdError as exc:
            raise ZstError(f"{source.name} is not a readable zstd export: {exc}") from None
