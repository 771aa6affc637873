"""Small file helpers every writer shares: atomic writes, content hashes, canonical JSON."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

from common.errors import InputError


def temp_path(path: Path) -> Path:
    """The hidden temporary name this process writes ``path`` under before renaming it:
    ``.NAME.tmp-HOST-PID``, unique across the hosts of a shared file system (a task retried
    on another node never shares a writer's file); ``.NAME.tmp-*`` finds those left by
    killed writers."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file in the same folder
    (:func:`temp_path`) and ``os.replace``: a reader sees the old file or the new one, never
    a half-written one."""
    path = Path(path)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_bytes(obj) -> bytes:
    """Indented JSON with sorted keys and a final newline: equal objects, equal bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def check_out_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a Path, or an :class:`InputError` naming ``option`` unless it is a directory
    this process can write in or can make (an existing file, or a file above it, cannot be
    one). Nothing is created."""
    path = Path(path)
    _check_writable(path, path, option, "directory")
    return path


def check_out_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a Path, or an :class:`InputError` naming ``option`` unless a file can be
    written there (it is not a directory, and the folder above it is one or can be made)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give a file name")
    _check_writable(path, path.parent, option, "file")
    return path


def _check_writable(given: Path, folder: Path, option: str, kind: str) -> None:
    for path in (folder, *folder.parents):
        if not path.exists():
            continue
        if not path.is_dir():
            raise InputError(f"{option} {given}: {path} is an existing file, not a folder; "
                             f"give another {kind}")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {given}: {path} is not writable; give another {kind}")
        return
