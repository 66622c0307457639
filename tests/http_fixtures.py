"""A local HTTP server (127.0.0.1 only) serving the example photo, for URL inputs without a network."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import EXAMPLE_PHOTO


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def served(tmp_path):
    """Base URL of a local server over a folder with photo.jpg (the example photo) and empty.jpg (0 bytes)."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "photo.jpg").write_bytes(EXAMPLE_PHOTO.read_bytes())
    (root / "empty.jpg").write_bytes(b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
