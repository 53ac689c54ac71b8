"""Folders and files that hold people's data (logged requests, example rows in reports): only their owner reads them.

Whatever the umask: folders are created 0700 and files 0600 (os.makedirs' and open's modes are masked by the
umask, so both are set explicitly, and a file is created 0600 before anything is written to it). A folder that
already exists and that others can write is refused (someone else could plant or swap files there), unless the
caller made it itself earlier (`tighten=True`: the project's own report folders); one others can only read is
tightened to 0700 when it is ours.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


class NotPrivate(PermissionError):
    """A folder for personal data that others can write; the message says which and how to fix it."""


def private_folder(path, tighten: bool = False) -> Path:
    """Creates `path` (and missing parents) 0700, or checks an existing one; returns it. `tighten`: an existing
    folder of ours that others can write is made 0700 instead of refused."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # another process made it meanwhile: checked below like any existing one
            pass
        os.chmod(folder, FOLDER_MODE)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotPrivate(f"{path} is not a folder")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (tighten and info.st_uid == os.geteuid()):
        raise NotPrivate(
            f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}); it would hold "
            f"personal data: use a folder only you can write (chmod 700 {path})"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.geteuid():
        os.chmod(path, FOLDER_MODE)
    return path


def create_private_file(path) -> Path:
    """An empty file created 0600 (never there before: O_EXCL), for a writer that opens it by name afterwards."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask too
    finally:
        os.close(fd)
    return Path(path)


def write_private(path, data: bytes) -> Path:
    """Writes `data` to `path` as a 0600 file, atomically (a hidden 0600 sibling renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    create_private_file(tmp)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
