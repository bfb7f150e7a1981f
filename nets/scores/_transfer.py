"""Moving a score cache between machines: one tar file out, checked and merged in (data before metadata)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from pathlib import Path

from costmodel import UserError
from nets.scores._atomic import atomic_write_bytes, current_umask

MEMBER = re.compile(r"(weights/)?[0-9a-f]{24}\.(npz|pt|json)")  # what a cache holds (manifest.json is rebuilt)


class CacheTransferError(UserError):
    """A cache archive that cannot be written or read; the message names the file."""


def cache_members(root: Path) -> list[str]:
    """The cache's files, relative to `root`, in the order an import writes them (data before metadata)."""
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted((n for n in names if MEMBER.fullmatch(n)), key=lambda n: (n.endswith(".json"), n))


def export_cache(root: Path, archive: Path) -> int:
    """Write every cache file under `root` into the tar file `archive` (atomically); returns the file count."""
    if not root.is_dir():
        raise CacheTransferError(f"--cache-dir {root}: no score cache there")
    members = cache_members(root)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
            for name in members:
                tar.add(root / name, arcname=name, recursive=False)
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(members)


def _read_archive(archive: Path) -> dict[str, bytes]:
    """Every member of a cache archive, after checking names, kinds and each metadata file's SHA-256."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            files = {}
            for info in tar.getmembers():
                if not info.isfile() or not MEMBER.fullmatch(info.name):
                    raise CacheTransferError(f"{archive}: member '{info.name}' is not a score-cache file")
                handle = tar.extractfile(info)
                assert handle is not None
                files[info.name] = handle.read()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise CacheTransferError(f"{archive}: not a readable cache archive ({' '.join(str(exc).split())})") from None
    for name, data in files.items():
        if not name.endswith(".json"):
            continue
        try:
            sha = json.loads(data)["sha256"]
        except (ValueError, KeyError, TypeError):
            raise CacheTransferError(f"{archive}: member '{name}' is not cache metadata") from None
        payload = next((files[name[:-5] + ext] for ext in (".npz", ".pt") if name[:-5] + ext in files), None)
        if payload is None or hashlib.sha256(payload).hexdigest() != sha:
            raise CacheTransferError(f"{archive}: member '{name}': its data file is missing or does not match")
    return files


def import_cache(root: Path, archive: Path) -> int:
    """Merge a cache archive into `root`: every member is checked first, then written atomically, data before
    metadata; returns the number of files written (existing identical files are skipped)."""
    if not archive.is_file():
        raise CacheTransferError(f"{archive}: no such file")
    files = _read_archive(archive)
    written = 0
    for name in sorted(files, key=lambda n: (n.endswith(".json"), n)):
        target = root / name
        if target.is_file() and target.read_bytes() == files[name]:
            continue
        atomic_write_bytes(target, files[name])
        written += 1
    return written
