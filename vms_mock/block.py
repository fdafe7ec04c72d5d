"""Sparse backing files of block volumes and their snapshot copies (host file operations).

A volume's data lives in ``<data-dir>/block/<uuid>.img``, a sparse file whose length is the
volume size. Copies (snapshots, clones) use a reflink (FICLONE) when the file system supports it
and otherwise copy only the data extents (SEEK_DATA / SEEK_HOLE), so an empty 1 TiB volume costs
nothing to snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h
_CHUNK = 1 << 20


def create_sparse(path: Path, size: int) -> None:
    """Create ``path`` as a sparse file of ``size`` bytes (fails if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def grow(path: Path, size: int) -> None:
    """Extend ``path`` to ``size`` bytes; never shrinks (the API only allows growth)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the data regions of ``fd``; the whole file if SEEK_DATA is missing."""
    extents: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no more data after pos
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, min(end, size) - start))
            pos = end
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return [(0, size)]
        raise
    return extents


def _copy_range(sfd: int, dfd: int, off: int, count: int) -> None:
    done = 0
    while done < count:
        want = min(_CHUNK * 64, count - done)
        try:
            n = os.copy_file_range(sfd, dfd, want, off + done, off + done)
        except OSError:  # e.g. EXDEV/EOPNOTSUPP on some file systems: plain reads and writes
            data = os.pread(sfd, min(_CHUNK, want), off + done)
            n = os.pwrite(dfd, data, off + done) if data else 0
        if n == 0:
            break
        done += n


def copy_sparse(src: Path, dst: Path, size: int | None = None) -> str:
    """Copy ``src`` to a new file ``dst`` (length ``size`` or the source's). Returns the method
    used: ``reflink`` or ``sparse``. ``dst`` is removed again if the copy fails."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    sfd = os.open(src, os.O_RDONLY)
    try:
        src_size = os.fstat(sfd).st_size
        length = src_size if size is None else size
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
                method = "reflink"
            except OSError:
                method = "sparse"
                for off, count in _data_extents(sfd, src_size):
                    _copy_range(sfd, dfd, off, count)
            os.ftruncate(dfd, length)
        except BaseException:
            os.close(dfd)
            remove(dst)
            raise
        os.close(dfd)
    finally:
        os.close(sfd)
    return method
