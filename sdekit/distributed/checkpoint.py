"""A folder of finished shards, so that a stopped run resumes where it stopped.

Layout: ``run.json`` (the run's key and a human-readable description) and one file per finished shard,
``shard-<index>.bin``: a header line (JSON: the shard's key and the SHA-256 of the payload) followed by the pickled
payload. A shard file is used only when its header names the shard's key and the payload's digest matches; a file
that fails the check (cut short by a crash, edited, from another run) is ignored and the shard recomputed. Files are
written to a temporary name and renamed, so a reader never sees half a file. Workers write and read the folder
themselves: on a cluster it must be on a file system every worker sees (any folder works on a LocalCluster).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from sdekit.errors import SDEKitError


class ShardCheckpoint:
    """The checkpoint folder of one run (`module docstring`); pickles as its path and run key."""

    def __init__(self, folder: str | os.PathLike, run_key: str, description: dict[str, Any] | None = None):
        try:
            self.folder = Path(folder)
        except TypeError as exc:
            raise SDEKitError(f"checkpoint must be a folder path (str or os.PathLike); got {folder!r}") from exc
        self.run_key = run_key
        self.description = description or {}

    def claim(self) -> None:
        """Create the folder for this run, or check that an existing one belongs to it (SDEKitError if it holds
        another run's shards: a resumed run must be the same run)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise SDEKitError(f"checkpoint {str(self.folder)!r} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "run.json"
        if manifest.exists():
            try:
                theirs = json.loads(manifest.read_text()).get("run_key")
            except (OSError, ValueError) as exc:
                raise SDEKitError(f"checkpoint {str(self.folder)!r}: run.json is unreadable ({exc}); delete the "
                                  "folder to start afresh") from exc
            if theirs != self.run_key:
                raise SDEKitError(f"checkpoint {str(self.folder)!r} holds the shards of another run (key "
                                  f"{str(theirs)[:12]}..., this run {self.run_key[:12]}...): a run resumes only "
                                  "with the same problem, x0, times, options, seed, n_paths and shard size; use "
                                  "another folder or delete this one")
            return
        _atomic_write(manifest, json.dumps({"run_key": self.run_key, "description": self.description},
                                           indent=1, default=str).encode())

    def path(self, index: int) -> Path:
        """The file of shard ``index``."""
        return self.folder / f"shard-{index:06d}.bin"

    def load(self, index: int, shard_key: str) -> Any | None:
        """The saved result of shard ``index`` if its file exists and passes the check, else None."""
        try:
            raw = self.path(index).read_bytes()
        except OSError:
            return None
        head, sep, payload = raw.partition(b"\n")
        try:
            header = json.loads(head)
        except ValueError:
            return None
        if not sep or header.get("key") != shard_key or header.get("sha256") != hashlib.sha256(payload).hexdigest():
            return None
        return pickle.loads(payload)

    def save(self, index: int, shard_key: str, result: Any) -> None:
        """Write shard ``index``'s result under its key (atomically)."""
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        header = json.dumps({"key": shard_key, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
        _atomic_write(self.path(index), header + b"\n" + payload)

    def finished(self) -> list[int]:
        """Indices of the shard files present (not yet checked)."""
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("shard-*.bin"))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
