"""Fetching data files: official URLs, checksums, progress bars, atomic writes, and clear offline errors.

A reader declares its files as :class:`RemoteFile` records and calls :func:`ensure`, which returns local paths:
- a file already present is verified against its published checksum (a corrupt file is never used silently);
- a missing file is downloaded (when allowed) to `<name>.<random>.part`, hashed while streaming, verified, then renamed, so
  an interrupted or corrupt download never leaves a file that looks complete;
- offline, or with `download=False` (which never touches the network), one :class:`DataNotFoundError` lists every
  missing file, the directory to place it in, and its URL.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

from mpts_fast.data.base import Availability

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class DataNotFoundError(FileNotFoundError):
    """A data file is absent locally and could not (or may not) be downloaded; the message says what to place where."""


class ChecksumError(ValueError):
    """A data file's checksum differs from the published one."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set.

    name: the file name in the data directory; urls: official locations, tried in order;
    md5 / sha256: the published checksum (None when the source publishes none: then the reader validates the
    contents' structure instead); alternatives: local names accepted in place of `name` without a checksum
    (an uncompressed or extracted copy the user made, e.g. `train-images-idx3-ubyte` for the .gz).
    """

    name: str
    urls: tuple[str, ...] = ()
    md5: str | None = None
    sha256: str | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def checksum(self) -> tuple[str, str] | None:
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise ChecksumError if `path` does not match `remote`'s published checksum (no-op when none is published)."""
    if remote.checksum is None:
        return
    algorithm, expected = remote.checksum
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: {algorithm} {actual} does not match the published {expected}; the file is corrupt or not the "
            f"official one. Delete it and download again{' from ' + remote.urls[0] if remote.urls else ''}."
        )


def locate(remote: RemoteFile, directories: Sequence[Path]) -> Path | None:
    """The first existing copy of `remote` (its name, then its alternatives) in `directories`, or None."""
    for directory in directories:
        for candidate in (remote.name, *remote.alternatives):
            path = Path(directory) / candidate
            if path.exists():
                return path
    return None


def presence(files: Sequence[RemoteFile], directories: Sequence[Path]) -> Availability:
    """Availability of `files` in `directories` by name only (no checksums, no network)."""
    found = [locate(f, directories) for f in files]
    missing = tuple(f.name for f, path in zip(files, found) if path is None)
    if missing:
        return Availability("missing", Path(directories[0]), missing)
    return Availability("present", found[0].parent)


def missing_message(dataset: str, directory: Path, files: Sequence[RemoteFile], reason: str) -> str:
    width = max(len(f.name) for f in files)
    lines = [f"{dataset}: {len(files)} file(s) missing ({reason}).",
             f"Place these files in {directory} (or pass --data-dir / data_dir pointing at a directory that has them):"]
    for f in files:
        where = f.urls[0] if f.urls else "no public download; see docs/datasets.md"
        check = f"  [{f.checksum[0]} {f.checksum[1]}]" if f.checksum else ""
        lines.append(f"  {f.name:<{width}}  {where}{check}")
        if f.alternatives:
            lines.append(f"  {'':<{width}}  (or: {', '.join(f.alternatives)})")
    return "\n".join(lines)


def ensure(dataset: str, files: Sequence[RemoteFile], directories: Sequence[Path] | Path, *, download: bool = True,
           progress: bool = True) -> list[Path]:
    """Local paths of `files` (same order), downloading missing ones into the first directory when allowed.

    dataset: the registry name (for messages); directories: where to look, first one also the download target.
    Raises DataNotFoundError (offline / download=False / no URL) or ChecksumError (a present or fetched file is
    corrupt).
    """
    dirs = [Path(directories)] if isinstance(directories, (str, Path)) else [Path(d) for d in directories]
    target = dirs[0]
    found = [locate(f, dirs) for f in files]
    for f, path in zip(files, found):
        if path is not None and path.name == f.name:
            verify(path, f)
    missing = [f for f, path in zip(files, found) if path is None]
    if not missing:
        return [p for p in found if p is not None]
    if not download:
        raise DataNotFoundError(missing_message(dataset, target, missing, "download=False: the network is not used"))
    if any(not f.urls for f in missing):
        raise DataNotFoundError(missing_message(dataset, target, missing, "there is no public download to fetch"))
    failures: list[str] = []
    for i, f in enumerate(files):
        if found[i] is not None:
            continue
        try:
            found[i] = fetch(f, target, progress=progress)
        except OSError as exc:  # fetch turns every network failure into one OSError; ChecksumError propagates
            failures.append(f"{f.name}: {exc}")
    if failures:
        still = [f for f, path in zip(files, found) if path is None]
        raise DataNotFoundError(missing_message(dataset, target, still, "download failed: " + "; ".join(failures)))
    return [p for p in found if p is not None]


def _open_url(url: str, timeout: float) -> BinaryIO:
    """The network boundary (tests replace it): a readable response with an optional `headers` mapping."""
    request = urllib.request.Request(url, headers={"User-Agent": "mpts-fast"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - fixed https/http URLs of our registry


def fetch(remote: RemoteFile, directory: Path, *, progress: bool = True) -> Path:
    """Download `remote` into `directory` atomically (`.part`, verify, rename); tries each URL in turn.

    Raises ChecksumError when a download completes with the wrong checksum (after trying every URL), OSError when
    no URL could be read.
    """
    from tqdm.auto import tqdm

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / remote.name
    errors: list[str] = []
    bad_checksum: ChecksumError | None = None
    for url in remote.urls:
        digest = hashlib.new(remote.checksum[0]) if remote.checksum else None
        # a private .part per download, so two processes fetching the same file never write into one another's
        fd, tmp = tempfile.mkstemp(prefix=remote.name + ".", suffix=".part", dir=directory)
        part = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out, _open_url(url, TIMEOUT_S) as response:
                headers = getattr(response, "headers", None) or {}
                total = int(headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.name,
                          disable=None if progress else True, leave=False) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        if digest is not None:
                            digest.update(block)
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, IncompleteRead
            part.unlink(missing_ok=True)
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        except BaseException:  # Ctrl-C: leave nothing that looks like a download in progress
            part.unlink(missing_ok=True)
            raise
        if digest is not None and digest.hexdigest() != remote.checksum[1].lower():
            part.unlink(missing_ok=True)
            bad_checksum = ChecksumError(
                f"{remote.name} downloaded from {url} has {remote.checksum[0]} {digest.hexdigest()}, expected "
                f"{remote.checksum[1]}; the download was discarded."
            )
            continue
        part.chmod(0o644)  # mkstemp makes it private; a data cache is usually shared
        os.replace(part, final)
        return final
    if bad_checksum is not None:
        raise bad_checksum
    raise OSError("; ".join(errors) or "no URL")
