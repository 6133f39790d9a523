"""The app's own folder: its output files and Gradio's cache, under a disk budget, gone at exit.

One folder holds everything the app writes: the matte folders (``mattes/``) and Gradio's upload
and cache folders (GRADIO_TEMP_DIR points here). Output files inside Gradio's cache are served
where they are, not copied. When the folder grows past the budget, outputs go before uploads (a
user still editing a photo needs it), and within each the least recently used files go first (a
file's time is its last write; uploads are touched when they are used again); files
younger than a few seconds stay, since a request may be handing them out, and so do the files
pinned at startup (the examples Gradio copies into its cache).

Nothing here imports gradio.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_MAX_DISK_MB = 1024  # a Space's disk is tens of GB; a distinct edit keeps about 1-3 MB
GRACE_SECONDS = 5.0  # files this young are never removed (they may be on their way out)
SWEEP_SECONDS = 2.0  # the budget is also checked this often, for Gradio's own files


class Storage:
    """A folder kept under ``max_bytes``: outputs removed before uploads, least recently used
    first.

    Args:
        max_bytes: the budget; None keeps everything.
        root: the folder (created); a fresh temporary one by default.
        grace: files modified less than this many seconds ago are never removed.
        interval: seconds between sweeps of the background thread (see :meth:`start`).
    """

    def __init__(
        self,
        max_bytes: int | None,
        *,
        root: str | os.PathLike[str] | None = None,
        grace: float = GRACE_SECONDS,
        interval: float = SWEEP_SECONDS,
    ) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="clipmat-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.mattes = self.root / "mattes"
        self.mattes.mkdir(exist_ok=True)
        self.max_bytes = max_bytes
        self.grace = grace
        self.interval = interval
        self.stats = {"removed_files": 0, "removed_bytes": 0, "peak_bytes": 0}
        self.pinned: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def files(self) -> list[tuple[float, int, str]]:
        """Every regular file under the folder as (modification time, size, path)."""
        out: list[tuple[float, int, str]] = []
        stack = [str(self.root)]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue  # removed meanwhile
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        out.append((info.st_mtime, info.st_size, entry.path))
                except OSError:
                    continue
        return out

    def pin_current(self) -> None:
        """Never remove the files there now (e.g. the examples copied when the app is built)."""
        self.pinned.update(path for _, _, path in self.files())

    def usage(self) -> int:
        """Bytes in the folder now (file sizes)."""
        return sum(size for _, size, _ in self.files())

    def enforce(self) -> int:
        """Remove the least recently used files until the folder fits the budget (files younger
        than ``grace`` excepted); returns the bytes removed. A call while another runs returns 0
        at once."""
        if self.max_bytes is None or not self._lock.acquire(blocking=False):
            return 0
        try:
            files = self.files()
            total = sum(size for _, size, _ in files)
            self.stats["peak_bytes"] = max(self.stats["peak_bytes"], total)
            removed = 0
            if total > self.max_bytes:
                young = time.time() - self.grace
                for mtime, size, path in sorted(files, key=self._eviction_order):
                    if total - removed <= self.max_bytes or mtime > young:
                        break
                    if path in self.pinned:
                        continue
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    removed += size
                    self.stats["removed_files"] += 1
                self.stats["removed_bytes"] += removed
                self._prune_empty_folders()
            return removed
        finally:
            self._lock.release()

    def _eviction_order(self, file: tuple[float, int, str]) -> tuple[bool, float]:
        """Outputs (``mattes/``, written again on demand) before uploads and Gradio's cache (a
        user still editing a photo needs its upload), least recently used first in each."""
        mtime, _, path = file
        return (not path.startswith(str(self.mattes) + os.sep), mtime)

    def _prune_empty_folders(self) -> None:
        """Remove empty sub-folders older than the grace period (a writer may be about to use
        a new one); the root and ``mattes/`` stay."""
        young = time.time() - self.grace
        keep = {str(self.root), str(self.mattes)}
        for folder, subfolders, names in os.walk(self.root, topdown=False):
            if folder in keep or names or subfolders:
                continue
            try:
                if os.stat(folder).st_mtime < young:
                    os.rmdir(folder)
            except OSError:
                pass  # filled or removed meanwhile

    def start(self) -> None:
        """Sweep in a background thread every ``interval`` seconds until :meth:`close`."""
        if self._thread is None and self.max_bytes is not None:
            self._thread = threading.Thread(target=self._sweep, name="disk-budget", daemon=True)
            self._thread.start()

    def _sweep(self) -> None:
        while not self._stop.wait(self.interval):
            self.enforce()

    def close(self) -> None:
        """Stop sweeping and delete the folder with everything in it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
