"""Download: a real HTTP server on 127.0.0.1 serves a small zip shaped like GroupLens' archive."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from edgerec.data.download import ARCHIVES, datasets_dir, download
from edgerec.data.loaders import read_interactions
from edgerec.errors import DownloadError

UDATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep request lines off the test output
        pass


class Server:
    """A static file server in a thread; `url` is its base URL, `stop()` shuts it down."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Never touch the real ~/.cache, and never route 127.0.0.1 through a proxy."""
    monkeypatch.setenv("EDGEREC_HOME", str(tmp_path / "home"))
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served(tmp_path):
    """Serve a folder; the test writes the archive into it. Yields (folder, server)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = Server(folder)
    yield folder, server
    server.stop()


def publish(folder: Path, payload: bytes, name: str = "ml-100k.zip") -> str:
    (folder / name).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def test_downloads_extracts_and_then_uses_the_cache(tmp_path, served):
    folder, server = served
    digest = publish(folder, zip_bytes({"ml-100k/u.data": UDATA, "ml-100k/README": b"readme"}))
    cache = tmp_path / "cache"

    path = download("ml-100k", cache, base_url=server.url, sha256=digest)
    assert path == cache / "ml-100k" / "u.data"
    assert path.read_bytes() == UDATA
    assert (cache / "ml-100k" / "README").read_bytes() == b"readme"
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # no scratch left behind

    server.stop()
    again = download("ml-100k", cache, base_url=server.url, sha256=digest)
    assert again == path and again.read_bytes() == UDATA
    assert len(read_interactions(again)) == 3


def test_default_cache_follows_edgerec_home(tmp_path, served):
    folder, server = served
    digest = publish(folder, zip_bytes({"ml-100k/u.data": UDATA}))
    path = download("ml-100k", base_url=server.url + "/", sha256=digest)
    assert path == tmp_path / "home" / "datasets" / "ml-100k" / "u.data"
    assert datasets_dir() == tmp_path / "home" / "datasets"


def test_wrong_checksum_raises_and_caches_nothing(tmp_path, served):
    folder, server = served
    digest = publish(folder, zip_bytes({"ml-100k/u.data": UDATA}))
    cache = tmp_path / "cache"

    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download("ml-100k", cache, base_url=server.url, sha256=wrong)
    assert digest in str(info.value) and wrong in str(info.value)
    assert list(cache.iterdir()) == []


def test_pinned_checksum_is_checked_by_default(tmp_path, served):
    folder, server = served
    publish(folder, zip_bytes({"ml-100k/u.data": UDATA}))
    with pytest.raises(DownloadError, match=ARCHIVES["ml-100k"].sha256):
        download("ml-100k", tmp_path / "cache", base_url=server.url)
    assert not (tmp_path / "cache" / "ml-100k").exists()


def test_unreachable_server(tmp_path, served):
    _, server = served
    server.stop()
    with pytest.raises(
        DownloadError, match=f"cannot fetch {server.url}/ml-100k.zip .*no connection"
    ):
        download("ml-100k", tmp_path / "cache", base_url=server.url, timeout=5)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_archive_is_an_http_error(tmp_path, served):
    _, server = served
    with pytest.raises(DownloadError, match="ml-1m.zip: the server answered HTTP 404"):
        download("ml-1m", tmp_path / "cache", base_url=server.url)


def test_corrupt_zip(tmp_path, served):
    folder, server = served
    digest = publish(folder, b"this is not a zip archive")
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download("ml-100k", tmp_path / "cache", base_url=server.url, sha256=digest)
    assert list((tmp_path / "cache").iterdir()) == []


def test_zip_without_the_ratings_file(tmp_path, served):
    folder, server = served
    digest = publish(folder, zip_bytes({"ml-100k/u.item": b"1|Toy Story"}))
    with pytest.raises(DownloadError, match="the archive lacks ml-100k/u.data"):
        download("ml-100k", tmp_path / "cache", base_url=server.url, sha256=digest)


def test_ml1m_returns_ratings_dat(tmp_path, served):
    folder, server = served
    dat = b"1::1193::5::978300760\n"
    digest = publish(folder, zip_bytes({"ml-1m/ratings.dat": dat}), "ml-1m.zip")
    path = download("ml-1m", tmp_path / "cache", base_url=server.url, sha256=digest)
    assert path == tmp_path / "cache" / "ml-1m" / "ratings.dat" and path.read_bytes() == dat


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(
        DownloadError, match="unknown dataset 'ml-20m'; downloadable: ml-100k, ml-1m"
    ):
        download("ml-20m", tmp_path / "cache")
