"""A small disk that can be filled on purpose, to see what ddad-edge does when writing fails with ENOSPC.

`tmpfs`: a real 256 KiB tmpfs mounted under the test's folder (needs root, as on the development
machine); the kernel itself refuses the writes. `fake`: where no tmpfs can be mounted (CI as a plain
user), `FakeFullDisk` patches `os.write` so that writes to files under the folder fail with ENOSPC (or
are cut short) once the files there hold `capacity` bytes. Both variants run the same tests: the code
under test writes through os.write (the event log, `atomic_write_bytes`), so the fake sees every write.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

CAPACITY = 256 * 1024
FILLER = ".filler"


class FakeFullDisk:
    """Stands in for a full filesystem: os.write to a file under `root` fails once the files there hold
    `capacity` bytes; a write that does not fit is cut short first, as the kernel does."""

    def __init__(self, root: Path, capacity: int, monkeypatch) -> None:
        self.root, self.capacity = root, capacity
        real_write = os.write

        def write(fd: int, data) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.startswith(f"{self.root}/"):
                room = self.capacity - self.used()
                if room <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data = memoryview(data)[:room]
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)

    def used(self) -> int:
        total = 0
        for path in self.root.rglob("*"):
            try:
                total += path.stat().st_size if path.is_file() else 0
            except FileNotFoundError:
                pass  # a temporary file renamed or removed by another thread meanwhile
        return total

    def free_bytes(self) -> int:
        return self.capacity - self.used()


class TinyDisk:
    """A folder on a small filesystem, real (tmpfs) or fake, that tests fill and free."""

    def __init__(self, path: Path, kind: str, fake: FakeFullDisk | None = None) -> None:
        self.path, self.kind, self._fake = path, kind, fake

    def free_bytes(self) -> int:
        if self._fake:
            return self._fake.free_bytes()
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Write a filler file so that about `leave` bytes stay free (a tmpfs counts whole 4 KiB pages)."""
        filler = self.path / FILLER
        size = (filler.stat().st_size if filler.exists() else 0) + self.free_bytes() - leave
        with open(filler, "wb") as fh:  # a plain file object: the fake does not limit the filler itself
            try:
                fh.write(b"\0" * max(0, size))
            except OSError:
                pass  # a tmpfs refuses the last partial page: the disk is as full as it gets
        assert self.free_bytes() <= leave

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)


@pytest.fixture(params=["tmpfs", "fake"])
def tiny_disk(request, tmp_path, monkeypatch):
    """A 256 KiB disk: a real tmpfs where one can be mounted, else the fake; both where both work."""
    path = tmp_path / "disk"
    path.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CAPACITY}", "tmpfs", str(path)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'needs root'}); "
                        "the fake full disk runs the same test")
        try:
            yield TinyDisk(path, "tmpfs")
        finally:
            if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
    else:
        yield TinyDisk(path, "fake", FakeFullDisk(path, CAPACITY, monkeypatch))
