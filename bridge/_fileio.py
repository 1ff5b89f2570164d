"""Atomic file writes with the permissions decided at creation time.

Private helper of ``bridge.pki`` and ``bridge.homes``. Secrets are created
with ``os.open(..., mode)`` so no other user can ever read them, not even for
the instant between a write and a later ``chmod``. Every write goes to a
temporary file in the same directory and is renamed over the target, so a
crash or power cut leaves either the old file or the new one, never half of
one. All functions block: call them from an executor in asyncio code.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
PRIVATE_DIR_MODE = 0o700


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` atomically; the new file has ``mode`` (minus umask)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret (a private key) readable by its owner only (0600)."""
    write_atomic(path, data, mode=PRIVATE_FILE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file (certificate, CRL, metadata), 0644."""
    write_atomic(path, data, mode=PUBLIC_FILE_MODE)


def rename_atomic(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic on POSIX) and make the rename durable."""
    src.replace(dst)
    _fsync_directory(dst.parent)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; a directory we create is 0700."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def _fsync_directory(directory: Path) -> None:
    # The rename itself must survive a power cut, which needs the directory synced.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
