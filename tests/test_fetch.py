"""emofer.fetch: images from http(s) URLs, against a local http.server on 127.0.0.1 only."""

from __future__ import annotations

import socket
import time

import pytest

from emofer.errors import ImageReadError
from emofer.fetch import fetch_url, is_url
from emofer.io import load_image

from .conftest import EXAMPLE_PHOTO
from .http_fixtures import served  # noqa: F401  (fixture)


def test_is_url():
    assert is_url("https://example.org/a.jpg") and is_url("HTTP://example.org/a.jpg")
    assert not is_url("photos/a.jpg") and not is_url("ftp://example.org/a.jpg") and not is_url(b"http://x")


def test_fetch_gives_the_file_bytes(served):
    data = fetch_url(f"{served}/photo.jpg")
    assert data == EXAMPLE_PHOTO.read_bytes()
    assert load_image(data).shape == load_image(EXAMPLE_PHOTO).shape


def test_http_errors_say_what_the_server_answered(served):
    with pytest.raises(ImageReadError, match="answered 404"):
        fetch_url(f"{served}/missing.jpg")
    with pytest.raises(ImageReadError, match="no data"):
        fetch_url(f"{served}/empty.jpg")


def test_size_cap(served):
    with pytest.raises(ImageReadError, match="larger than 1,000 bytes"):
        fetch_url(f"{served}/photo.jpg", max_bytes=1000)


def test_refused_connection_is_an_image_read_error():
    with socket.socket() as sock:  # a port nobody listens on: bind, then close
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ImageReadError, match="could not be fetched"):
        fetch_url(f"http://127.0.0.1:{port}/a.jpg")


def test_a_silent_server_times_out():
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        start = time.monotonic()
        with pytest.raises(ImageReadError, match="could not be fetched"):
            fetch_url(f"http://127.0.0.1:{sock.getsockname()[1]}/a.jpg", timeout=0.5)
        assert time.monotonic() - start < 5


def test_load_image_says_it_does_not_fetch_urls():
    with pytest.raises(ImageReadError, match="fetch_url"):
        load_image("https://upload.wikimedia.org/wikipedia/commons/a/ad/Grace_Hopper.jpg")
