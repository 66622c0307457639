"""Images from http(s) URLs: one GET with a timeout and a size cap; failures are ImageReadError.

    data = fetch_url("https://example.org/photo.jpg")   # bytes, then load_image(data)

Only ``http://`` and ``https://`` are fetched (urllib, so ``HTTPS_PROXY`` and the system
certificates apply). A download that takes longer than ``timeout`` seconds between bytes,
or that is larger than ``max_bytes``, is abandoned with an ImageReadError that says so.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

from .errors import ImageReadError

__all__ = ["URL_SCHEMES", "FETCH_TIMEOUT_S", "MAX_FETCH_BYTES", "is_url", "fetch_url"]

URL_SCHEMES = ("http://", "https://")
#: Seconds to wait for the server to connect or send the next bytes.
FETCH_TIMEOUT_S = 20.0
#: Largest download accepted (50 MiB: far above any photo, far below a video).
MAX_FETCH_BYTES = 50 * 2**20


def is_url(text: object) -> bool:
    """True for a str starting with http:// or https:// (any case)."""
    return isinstance(text, str) and text[:8].lower().startswith(URL_SCHEMES)


def fetch_url(url: str, *, timeout: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_FETCH_BYTES) -> bytes:
    """The body of ``url`` (http or https), at most ``max_bytes`` long; ImageReadError on any failure."""
    from ._version import __version__

    if not is_url(url):
        raise ImageReadError(f"{url!r} is not an http:// or https:// URL")
    too_big = (
        f"{url} is larger than {max_bytes:,} bytes; download it yourself and pass the file if it really is an image"
    )
    request = urllib.request.Request(url, headers={"User-Agent": f"emofer/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise ImageReadError(too_big)
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise ImageReadError(f"{url}: the server answered {exc.code} {exc.reason}; check the address") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ImageReadError(
            f"{url} could not be fetched ({reason}); check the address and the network, "
            "or download the image and pass its path"
        ) from exc
    if len(data) > max_bytes:
        raise ImageReadError(too_big)
    if not data:
        raise ImageReadError(f"{url}: the server sent no data (0 bytes)")
    return data
