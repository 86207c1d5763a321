"""Fetching the GroupLens MovieLens archives into a local cache.

MovieLens may not be redistributed, so edgerec fetches it from GroupLens on first use: the zip is
streamed to a temporary file, checked against a pinned sha256, extracted into a temporary folder
and renamed into place. The rename is the commit point, so the cache never holds a half-extracted
dataset, and a later call finds the ratings file without touching the network.

The cache lives in `~/.cache/edgerec/datasets`; `EDGEREC_HOME` replaces `~/.cache/edgerec`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgerec.errors import DownloadError

logger = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Archive:
    """One GroupLens archive and the ratings file inside it."""

    filename: str  # the zip's name under the base URL
    ratings: str  # the ratings file, as a path inside the zip and under the cache
    sha256: str


# Limitation: neither digest was verified against a download here, because this project's
# machines have no internet. Each is the value that several independent public projects pin
# for the GroupLens file; the ml-100k one is backed by a local check: the same sources give the
# sha256 of its u.data member, which matches ../shared/data/ml-100k/u.data. If GroupLens ever
# changes an archive, download() fails with both digests; pass `sha256=` to accept the new one.
ARCHIVES = {
    "ml-100k": Archive(
        filename="ml-100k.zip",
        ratings="ml-100k/u.data",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    ),
    "ml-1m": Archive(
        filename="ml-1m.zip",
        ratings="ml-1m/ratings.dat",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    ),
}

_CHUNK = 1 << 20


def datasets_dir() -> Path:
    """Where downloads are cached: `$EDGEREC_HOME/datasets`, else `~/.cache/edgerec/datasets`."""
    home = os.environ.get("EDGEREC_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "edgerec"
    return root / "datasets"


def download(
    name: str,
    cache_dir: Path | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 60,
    sha256: str | None = None,
) -> Path:
    """The path of `name`'s ratings file, fetched and extracted into the cache if not there yet.

    `sha256` replaces the pinned digest of the archive; `base_url` replaces GroupLens' address.
    """
    archive = _archive(name)
    cache_dir = Path(cache_dir) if cache_dir is not None else datasets_dir()
    ratings = cache_dir / archive.ratings
    if ratings.is_file():
        logger.debug("%s: using the cached %s", name, ratings)
        return ratings

    target = cache_dir / _top_folder(archive)
    if target.exists():
        raise DownloadError(
            f"{target} exists but lacks {ratings.name}; remove it to download again"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{(base_url or GROUPLENS_URL).rstrip('/')}/{archive.filename}"
    expected = (sha256 or archive.sha256).lower()

    # The temporary folder sits in the cache itself, so the final rename stays on one filesystem.
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=cache_dir) as scratch:
        zip_path = Path(scratch) / archive.filename
        digest = _fetch(url, zip_path, timeout, cache_dir)
        if digest != expected:
            raise DownloadError(
                f"{url}: sha256 is {digest}, expected {expected}; the file is corrupt or changed"
            )
        extracted = _extract(zip_path, Path(scratch) / "extracted", archive, url)
        _install(extracted, target)

    logger.info("%s ready at %s", name, ratings)
    return ratings


def _archive(name: str) -> Archive:
    if name not in ARCHIVES:
        raise DownloadError(f"unknown dataset {name!r}; downloadable: {', '.join(ARCHIVES)}")
    return ARCHIVES[name]


def _top_folder(archive: Archive) -> str:
    return archive.ratings.split("/")[0]


def _fetch(url: str, dest: Path, timeout: float, cache_dir: Path) -> str:
    """Stream `url` into `dest`; the sha256 of what was received."""
    logger.info("downloading %s", url)
    started = time.perf_counter()
    digest = hashlib.sha256()
    size = 0

    with dest.open("wb") as out:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except urllib.error.HTTPError as err:
            err.close()  # an HTTPError holds the response open
            raise DownloadError(f"{url}: the server answered HTTP {err.code} {err.reason}") from err
        except (
            urllib.error.URLError,
            TimeoutError,
            ConnectionError,
            http.client.HTTPException,
        ) as err:
            reason = getattr(err, "reason", None) or err
            raise DownloadError(
                f"cannot fetch {url} ({reason}): no connection; check the network, or extract "
                f"the archive under {cache_dir}"
            ) from err

    logger.debug("fetched %d bytes in %.1f s", size, time.perf_counter() - started)
    return digest.hexdigest()


def _extract(zip_path: Path, dest: Path, archive: Archive, url: str) -> Path:
    """Extract the archive's top folder into `dest`; the path of that folder."""
    top = _top_folder(archive)
    try:
        with zipfile.ZipFile(zip_path) as bundle:
            members = [m for m in bundle.namelist() if m.startswith(f"{top}/")]
            if archive.ratings not in members:
                raise DownloadError(f"{url}: the archive lacks {archive.ratings}")
            # ZipFile.extractall drops absolute paths and '..' parts, so members stay in `dest`.
            bundle.extractall(dest, members=members)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{url}: not a valid zip archive ({err})") from err
    return dest / top


def _install(extracted: Path, target: Path) -> None:
    try:
        os.replace(extracted, target)
    except OSError as err:
        # Another process may have installed the same dataset meanwhile; its copy is as good.
        if not target.is_dir():
            raise DownloadError(f"cannot move the extracted dataset to {target}: {err}") from err
        logger.debug("%s appeared meanwhile; keeping it", target)
