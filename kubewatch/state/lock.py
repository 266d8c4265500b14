"""The state directory's lock: one kubewatch process per state directory.

Two processes on one directory (a second ``kubewatch run`` started by mistake, a rolling
update over a shared volume) would number spool rows from the same sequence and overwrite
each other's rows and checkpoint. So opening the state takes an exclusive ``flock`` on
``lock`` in the directory, and a second process fails at once with :class:`StateLocked`.

The kernel releases a ``flock`` when its file is closed or its process dies (``kill -9``
and OOM kills included), so a lock never outlives its holder and nothing is left to clean
up: the file stays, only the lock on it goes. The holder writes its pid into the file so
the next process can name it. The file is never removed: a remove racing with another
process's open would let two processes lock two different files of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from kubewatch.errors import KubewatchError

__all__ = ["LOCK_FILE", "DirectoryLock", "StateLocked"]

LOCK_FILE = "lock"


class StateLocked(KubewatchError):
    """Another process holds the state directory; ``pid`` is its pid when it could be read."""

    def __init__(self, directory: str, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        holder = f" (pid {pid})" if pid is not None else ""
        super().__init__(
            f"state directory {directory} is in use by another kubewatch process{holder}; "
            "each kubewatch needs a state directory of its own"
        )


class DirectoryLock:
    """An exclusive lock on one state directory, held until :meth:`release`."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: str) -> DirectoryLock:
        """Lock ``directory`` (created if need be) or raise :class:`StateLocked` at once.

        Raises OSError when the lock file cannot be created at all.
        """
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateLocked(directory, pid) from None
        except OSError:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the pid only serves the next one's message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let go of the directory (idempotent); closing the file drops the ``flock``."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
