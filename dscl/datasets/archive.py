"""Obtaining archives: placed by hand, or downloaded (mirrors in order, resumable, with a
progress bar), verified against published checksums, and extracted safely.

A download goes to ``<name>.part`` and is moved into place only once complete and
verified: an interrupted or corrupt download never looks complete. Extraction goes to a
temporary folder renamed into place at the end, with a marker naming the archive, so it
is idempotent and never half-done.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from dscl.atomic import replace_dir
from dscl.errors import DSCLError

__all__ = [
    "ArchiveError",
    "ChecksumError",
    "DatasetError",
    "RemoteFile",
    "extract",
    "fetch",
    "file_digest",
]

CHUNK = 1 << 20
TIMEOUT_S = 60


class DatasetError(DSCLError, RuntimeError):
    """A dataset could not be obtained or does not have the expected content."""


class ChecksumError(DatasetError):
    """A file's checksum differs from the published one."""


class ArchiveError(DatasetError):
    """An archive is corrupt, truncated, or has a member escaping its folder."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: its official name, where it can be downloaded, its checksum.

    ``sha256``/``md5``: the published checksums (either may be None); ``size`` in bytes.
    ``how_to_obtain``: said when the file is neither there nor downloadable (``{target}``
    becomes the path where it belongs).
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    how_to_obtain: str | None = None


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes. Computed once per process for the same file as
    it stands (its size, modification and change times): verifying an archive, keying its
    extraction and recording it in the prepared data read a large archive once."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), (st.st_size, st.st_mtime_ns, st.st_ctime_ns), algorithm)


@functools.lru_cache(maxsize=64)
def _digest(path: str, stamp: tuple[int, int, int], algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the published size and checksum."""
    if remote.size is not None and path.stat().st_size != remote.size:
        raise ChecksumError(
            f"{path} has {path.stat().st_size:,} bytes, expected {remote.size:,} "
            f"(an incomplete or different file)"
        )
    for algorithm in ("sha256", "md5"):
        expected = getattr(remote, algorithm)
        if expected is not None:
            got = file_digest(path, algorithm)
            if got != expected:
                raise ChecksumError(f"{path}: {algorithm} {got} does not match the published {expected}")
            return


def _download(url: str, partial: Path) -> None:
    """Download ``url`` into ``partial``, resuming from its current size where the
    server accepts a byte range."""
    start = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "dscl-reproduction"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not start:  # 416: the range starts past the end of the file
            raise
        partial.unlink()
        return _download(url, partial)
    with response:
        status = getattr(response, "status", None)
        if start and status != 206:  # the server ignored the range: start again
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        with (
            open(partial, mode) as fh,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=partial.name[:-5]) as bar,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                fh.write(block)
                bar.update(len(block))
    if total is not None and partial.stat().st_size < total:
        raise urllib.error.URLError(f"connection closed after {partial.stat().st_size:,} of {total:,} bytes")


def fetch(remote: RemoteFile, directory: Path, verify_checksum: bool = True) -> Path:
    """Return the path of ``remote`` in ``directory``, downloading it if it is not there.

    A file placed by hand under its official name is used without any network access
    (and verified). Otherwise each URL is tried in order; a download is verified before
    it is moved into place. Offline with no file: :class:`DatasetError` naming the URLs
    tried and where to place the file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.filename
    if target.is_file():
        if verify_checksum:
            try:
                verify(target, remote)
            except ChecksumError as exc:
                raise ChecksumError(
                    f"{exc}. Delete the file to download it again, or set "
                    f"prepare.verify_checksum: false for a local test archive."
                ) from None
        return target
    partial = directory / (remote.filename + ".part")
    if partial.is_file() and remote.size is not None and partial.stat().st_size >= remote.size:
        # a download killed after it completed, before it was verified: verify it now
        # (a byte range past its end would be refused by every server)
        try:
            if verify_checksum:
                verify(partial, remote)
            if partial.stat().st_size == remote.size:
                os.replace(partial, target)
                return target
        except ChecksumError:
            pass
        partial.unlink()
    failures = []
    for url in remote.urls:
        try:
            _download(url, partial)
            if verify_checksum:
                verify(partial, remote)
        except ChecksumError as exc:
            partial.unlink(missing_ok=True)  # corrupt: never resume from it
            failures.append(f"{url}: {exc}")
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")  # keep the partial file: resumable
            continue
        os.replace(partial, target)
        return target
    if remote.how_to_obtain is not None and not failures:
        raise DatasetError(
            f"{remote.filename} is not at {target.resolve()}, where it belongs. "
            + remote.how_to_obtain.format(target=target)
        )
    tried = "\n".join(f"  - {f}" for f in failures) or "  (no URL is known)"
    hint = "" if remote.how_to_obtain is None else "\n" + remote.how_to_obtain.format(target=target)
    raise DatasetError(
        f"could not obtain {remote.filename}. Tried:\n{tried}\n"
        f"Download it by other means and place it at {target.resolve()}{hint}"
    )


# Bounds on what an archive may unpack to (the largest here, SOP: 120,053 images, 2.9 GB)
MAX_MEMBERS = 2_000_000
MAX_UNPACKED = 1 << 40  # 1 TiB declared in all


def _check_member(name: str) -> None:
    p = PurePosixPath(name)
    parts = p.parts  # "." and "./" (what `tar -C dir -czf x.tgz .` writes) have none
    if p.is_absolute() or ".." in parts or name.startswith(("/", "\\")) or (parts and ":" in parts[0]):
        raise ArchiveError(f"archive member {name!r} would be written outside the target folder")


def _check_sizes(archive: Path, count: int, unpacked: int, out: Path) -> None:
    """Refuse an archive with no members, too many, or more declared bytes than the
    bounds or the free space where it unpacks, before anything is written."""
    if count == 0:
        raise ArchiveError(f"{archive} holds no files (an empty archive)")
    if count > MAX_MEMBERS or unpacked > MAX_UNPACKED:
        raise ArchiveError(
            f"{archive} declares {count:,} members and {unpacked:,} bytes; at most "
            f"{MAX_MEMBERS:,} members and {MAX_UNPACKED:,} bytes are unpacked (not a dataset archive?)"
        )
    free = shutil.disk_usage(out).free
    if unpacked > free:
        raise DatasetError(
            f"{archive} unpacks to {unpacked / 1e9:.1f} GB but {out.parent} has {free / 1e9:.1f} GB free: "
            f"free some space or set prepare.root to a larger disk"
        )


def _extract_into(archive: Path, out: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_member(info.filename)
                _check_sizes(archive, len(infos), sum(i.file_size for i in infos), out)
                bad = zf.testzip()
                if bad is not None:
                    raise ArchiveError(f"{archive} is corrupt (member {bad!r} fails its CRC)")
                zf.extractall(out)
            return
        with tarfile.open(archive) as tf:
            members = tf.getmembers()  # reads the whole index: a truncated file fails here
            held = set()
            for m in members:
                _check_member(m.name)
                if (m.issym() or m.islnk()) and (
                    PurePosixPath(m.linkname).is_absolute() or ".." in PurePosixPath(m.linkname).parts
                ):
                    raise ArchiveError(f"archive member {m.name!r} links outside the target folder")
                if m.islnk() and PurePosixPath(m.linkname).as_posix() not in held:
                    raise ArchiveError(
                        f"archive member {m.name!r} is a hard link to {m.linkname!r}, which the archive "
                        f"does not hold before it"
                    )
                held.add(PurePosixPath(m.name).as_posix())
            _check_sizes(archive, len(members), sum(m.size for m in members if m.isfile()), out)
            tf.extractall(out, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise ArchiveError(f"{archive}: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:  # not the archive's fault
            raise DatasetError(
                f"no space left on the device while unpacking {archive} into {out.parent}"
            ) from None
        raise ArchiveError(f"{archive} is corrupt or truncated ({exc})") from None
    except (tarfile.TarError, EOFError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{archive} is corrupt or truncated ({exc})") from None


def extract(archive: Path, out: Path) -> Path:
    """Extract ``archive`` into the folder ``out`` (idempotently) and return ``out``.

    Members with absolute paths, ``..`` components, links leaving the folder or device
    files are refused, and so are empty archives and ones that declare more than the
    bounds above or the free space. A marker file records which archive was extracted,
    by its content (SHA-256): an extraction is reused only for the same bytes, so a
    re-made archive of the same name and size is extracted again.
    """
    marker = out / ".extracted"
    stamp = f"{archive.name} sha256:{file_digest(archive, 'sha256')}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _extract_into(archive, tmp)
        (tmp / ".extracted").write_text(stamp)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
