"""Downloads: cache, checksum, atomic placement, offline mode and one-line errors."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import sphinx.utils.download
from sphinx.errors import DownloadError
from sphinx.utils.download import cached_path, default_cache_dir, download, file_sha256

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, several chunks at the chunk size the tests set
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_SHA256 = "0" * 64


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server hook name)
        self.server.requests.append(self.path)  # before replying: the client may be done first
        if self.path == "/weights.pkl":
            self._headers(200, {"Content-Length": str(len(PAYLOAD))})
            self.wfile.write(PAYLOAD)
        elif self.path == "/short.pkl":
            # promises the whole payload, sends half, then closes
            self._headers(200, {"Content-Length": str(len(PAYLOAD)), "Connection": "close"})
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.close_connection = True
        elif self.path == "/dies.pkl":
            # chunked transfer whose server dies inside a chunk: no length to compare against
            self._headers(200, {"Transfer-Encoding": "chunked", "Connection": "close"})
            self.wfile.write(b"%x\r\n" % len(PAYLOAD) + PAYLOAD[:1000])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/stall.pkl":
            self._headers(200, {"Content-Length": str(len(PAYLOAD))})
            self.wfile.write(PAYLOAD[:10])
            self.wfile.flush()
            self.server.release.wait(timeout=5)
            self.close_connection = True
        else:
            self._headers(404, {"Content-Length": "0"})

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the hook's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.release = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    """A local HTTP server, shut down (and any stalled handler released) after the test."""
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _online_small_chunks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPHINX_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # never the user's cache
    monkeypatch.setattr(sphinx.utils.download, "_CHUNK_BYTES", 64 * 1024)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "weights.pkl"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def _cache_is_clean(cache: Path, *, expected: frozenset[str] = frozenset()) -> bool:
    """True when the cache folder holds exactly ``expected``: no temp leftovers, no partial file."""
    names = {entry.name for entry in cache.iterdir()} if cache.exists() else set()
    return names == expected


def test_default_cache_dir_is_torch_hub_checkpoints(tmp_path: Path) -> None:
    assert default_cache_dir() == tmp_path / "torch_home" / "hub" / "checkpoints"


def test_cached_path_names_file_after_url_without_query(tmp_path: Path) -> None:
    assert cached_path("https://host/a/b/net.pkl?x=1#f", cache_dir=tmp_path) == tmp_path / "net.pkl"
    assert cached_path("https://host/a/net.pkl", cache_dir=tmp_path, filename="x.pt") == tmp_path / "x.pt"
    assert cached_path("https://host/net.pkl") == default_cache_dir() / "net.pkl"


@pytest.mark.parametrize("filename", ["../escape.pkl", "a/b.pkl", ".."])
def test_cached_path_refuses_names_that_leave_the_cache(tmp_path: Path, filename: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        cached_path("https://host/net.pkl", cache_dir=tmp_path, filename=filename)


def test_cached_path_needs_a_name_when_url_has_none(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="filename="):
        cached_path("https://host/", cache_dir=tmp_path)


def test_file_url_is_copied_and_then_served_from_cache(tmp_path: Path, source: Path) -> None:
    cache = tmp_path / "cache"
    first = download(source.as_uri(), cache_dir=cache, progress=False)
    assert first == cache / "weights.pkl"
    assert first.read_bytes() == PAYLOAD
    source.unlink()  # a second fetch would now fail
    assert download(source.as_uri(), cache_dir=cache, progress=False) == first
    assert _cache_is_clean(cache, expected=frozenset({"weights.pkl"}))


def test_http_download_with_progress_bar(
    tmp_path: Path, server: _Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sphinx.utils.download, "_BAR_DELAY_S", 0)  # a local download is over in less
    path = download(f"{server.base_url}/weights.pkl", cache_dir=tmp_path, sha256=PAYLOAD_SHA256)
    assert path.read_bytes() == PAYLOAD
    bar = capsys.readouterr().err
    assert "weights.pkl" in bar and "100%" in bar and "1.00M/1.00M" in bar  # it reached the full size


def test_progress_false_prints_nothing(tmp_path: Path, server: _Server, capsys: pytest.CaptureFixture[str]) -> None:
    download(f"{server.base_url}/weights.pkl", cache_dir=tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def test_cached_file_is_not_fetched_again(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base_url}/weights.pkl"
    download(url, cache_dir=tmp_path, progress=False)
    download(url, cache_dir=tmp_path, sha256=PAYLOAD_SHA256, progress=False)
    assert server.requests == ["/weights.pkl"]


def test_http_404_names_url_and_leaves_nothing(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base_url}/missing.pkl"
    with pytest.raises(DownloadError) as caught:
        download(url, cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    assert url in message and "404" in message and str(tmp_path / "missing.pkl") in message
    assert "\n" not in message
    assert _cache_is_clean(tmp_path)


@pytest.mark.parametrize("name", ["short.pkl", "dies.pkl"])
def test_truncated_transfer_leaves_no_file(tmp_path: Path, server: _Server, name: str) -> None:
    url = f"{server.base_url}/{name}"
    with pytest.raises(DownloadError, match="cannot download") as caught:
        download(url, cache_dir=tmp_path, progress=False)
    assert url in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / name).exists()
    assert _cache_is_clean(tmp_path)


def test_stalled_server_times_out(tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sphinx.utils.download, "_TIMEOUT_S", 0.3)
    url = f"{server.base_url}/stall.pkl"
    with pytest.raises(DownloadError, match="timed out") as caught:
        download(url, cache_dir=tmp_path, progress=False)
    assert url in str(caught.value)
    assert _cache_is_clean(tmp_path)


def test_a_download_that_cannot_connect_draws_no_empty_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError):
        download(f"http://127.0.0.1:{port}/vgg16.pth", cache_dir=tmp_path)
    assert capsys.readouterr().err == ""


def test_unreachable_host_names_url(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.pkl"
    with pytest.raises(DownloadError) as caught:
        download(url, cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    assert url in message and f"place the file at {tmp_path / 'x.pkl'}" in message
    assert "\n" not in message
    assert _cache_is_clean(tmp_path)


def test_interrupt_mid_download_removes_temp_file(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _InterruptingBar:
        def __init__(self, **kwargs: object) -> None:
            pass

        def __enter__(self) -> _InterruptingBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(sphinx.utils.download, "tqdm", _InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        download(source.as_uri(), cache_dir=tmp_path / "cache", progress=False)
    assert _cache_is_clean(tmp_path / "cache")


def test_matching_sha256_is_accepted_in_any_case(tmp_path: Path, source: Path) -> None:
    path = download(source.as_uri(), cache_dir=tmp_path / "cache", sha256=PAYLOAD_SHA256.upper(), progress=False)
    assert file_sha256(path) == PAYLOAD_SHA256


def test_sha256_mismatch_keeps_nothing(tmp_path: Path, source: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=f"sha256 {PAYLOAD_SHA256}, expected {WRONG_SHA256}"):
        download(source.as_uri(), cache_dir=cache, sha256=WRONG_SHA256, progress=False)
    assert _cache_is_clean(cache)


def test_cached_file_with_wrong_hash_is_refused_with_advice(tmp_path: Path, source: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    corrupt = cache / "weights.pkl"
    corrupt.write_bytes(b"truncated")
    with pytest.raises(DownloadError) as caught:
        download(source.as_uri(), cache_dir=cache, sha256=PAYLOAD_SHA256, progress=False)
    assert f"delete {corrupt}" in str(caught.value)
    assert corrupt.read_bytes() == b"truncated"  # refused, not silently replaced


def test_malformed_sha256_is_rejected_before_anything_else(tmp_path: Path, source: Path) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        download(source.as_uri(), cache_dir=tmp_path, sha256="abc123", progress=False)


def test_unsupported_scheme_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scheme"):
        download("ftp://host/net.pkl", cache_dir=tmp_path, progress=False)


def test_offline_mode_says_where_to_place_the_file(
    tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    url = f"{server.base_url}/weights.pkl"
    with pytest.raises(DownloadError) as caught:
        download(url, cache_dir=tmp_path, progress=False)
    assert f"place the file at {tmp_path / 'weights.pkl'}" in str(caught.value)
    assert url in str(caught.value)
    assert server.requests == []  # the network was not touched
    assert _cache_is_clean(tmp_path)


def test_offline_mode_uses_a_file_already_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    (tmp_path / "net.pkl").write_bytes(PAYLOAD)
    path = download("https://example.invalid/net.pkl", cache_dir=tmp_path, sha256=PAYLOAD_SHA256)
    assert path == tmp_path / "net.pkl"


def test_offline_mode_still_copies_local_file_urls(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPHINX_OFFLINE", "1")
    path = download(source.as_uri(), cache_dir=tmp_path / "cache", progress=False)
    assert path.read_bytes() == PAYLOAD
