"""Whether OpenCV can open a window here: its GUI backend, and why a window cannot be shown."""

from __future__ import annotations

import os
import sys

import cv2

__all__ = ["opencv_gui", "display_problem"]

#: Build-information lines that name an OpenCV GUI backend when there is no "GUI:" summary line.
GUI_BACKENDS = ("GTK+", "GTK", "QT", "Win32 UI", "Cocoa")


def opencv_gui() -> str | None:
    """The GUI backend OpenCV was built with (e.g. "QT5", "GTK3"), or None for a headless build."""
    found = []
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "GUI":
            return None if value.upper() in ("", "NONE", "NO") else value
        if key in GUI_BACKENDS and value.upper().startswith("YES"):
            found.append(key)
    return " ".join(found) or None


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None when it probably can."""
    if opencv_gui() is None:
        return (
            "this OpenCV build has no GUI (opencv-python-headless?), so it cannot open a window; "
            "pip install opencv-python"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None
