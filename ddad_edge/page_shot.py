"""A screenshot of a web page by the system's headless Chromium (the demo's picture of the operator page).

Chromium is not a dependency of ddad-edge: where none is installed, `screenshot_page` says so and returns
None, and the caller goes on without a picture.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of a Chromium-family browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot_page(url: str, path: Path, width: int = 1280, height: int = 860, timeout_s: float = 90.0) -> Path | None:
    """Save a PNG of `url` at `path`; None (and nothing written) where no browser is found or it fails."""
    browser = find_chromium()
    if browser is None:
        return None
    path = Path(path)
    # virtual time: scripts run ~2.5 s of page time (two polls of the JSON) even on a slow machine;
    # no sandbox, as root in a container has none to give
    args = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", f"--window-size={width},{height}", "--virtual-time-budget=2500",
            f"--screenshot={path}", url]
    try:
        subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if path.exists() and path.stat().st_size > 0 else None
