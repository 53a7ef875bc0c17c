"""An output directory that is written whole or not at all.

Files are staged in a hidden directory beside the destination and moved into place at the end; a path that
cannot be a directory is refused before any work starts, and a write that fails (a full disk, a read-only file
system) leaves nothing behind. Every problem is one sentence (a ValueError).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional


class OutDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._anchor = self._check()
        self._staging: Optional[Path] = None

    def failure(self, err: OSError | str) -> ValueError:
        reason = err if isinstance(err, str) else (err.strerror or type(err).__name__)
        return ValueError(f"Cannot write to --out {self.path}: {reason}.")

    def _check(self) -> Path:
        """The nearest existing ancestor, proved writable by making (and removing) a directory in it."""
        limit = 255
        for part in self.path.parts:
            if len(os.fsencode(part)) > limit:
                raise self.failure("a name in the path is longer than 255 bytes")
        try:
            if self.path.exists() and not self.path.is_dir():
                raise self.failure("it exists and is not a directory")
            anchor = self.path if self.path.is_dir() else self.path.absolute().parent
            while not anchor.exists():
                anchor = anchor.parent
            if not anchor.is_dir():
                raise self.failure(f"{anchor} is a file")
            os.rmdir(tempfile.mkdtemp(prefix=".advlens-check-", dir=anchor))
        except (OSError, RuntimeError) as err:  # a symlink loop is a RuntimeError in older Pythons
            raise self.failure(err if isinstance(err, OSError) else "a symbolic link loop") from None
        return anchor

    def staging(self, sub: str = "") -> Path:
        """A directory whose contents become ``path/sub`` when :meth:`commit` runs."""
        try:
            if self._staging is None:
                self._staging = Path(tempfile.mkdtemp(prefix=".advlens-", dir=self._anchor))
            folder = self._staging / sub
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError as err:
            self.discard()
            raise self.failure(err) from None

    def write(self, files: dict[str, bytes]) -> None:
        """Stage ``files`` (relative name → bytes) and move everything staged into place."""
        try:
            for name, data in files.items():
                target = self.staging() / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        except OSError as err:
            self.discard()
            raise self.failure(err) from None
        self.commit()

    def commit(self) -> None:
        staged = self.staging()
        created = [p for p in [self.path, *self.path.parents] if not p.exists()]
        moved: list[Path] = []
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for source in sorted(staged.rglob("*")):
                if source.is_file():
                    target = self.path / source.relative_to(staged)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, target)
                    moved.append(target)
        except OSError as err:
            for target in moved:
                target.unlink(missing_ok=True)
            for folder in created:
                shutil.rmtree(folder, ignore_errors=True)
            raise self.failure(err) from None
        finally:
            self.discard()

    def discard(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
