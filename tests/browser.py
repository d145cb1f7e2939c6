"""Headless Chromium for tests that look at a page as a person would.

Debian's `chromium` and a CJK font (`fonts-noto-cjk`, so Chinese labels do
not render as boxes) are installed with apt-get when missing (the tests run
as root, as CI does); Playwright drives the browser over its DevTools
protocol and never downloads a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _has_cjk_font() -> bool:
    if not shutil.which("fc-list"):
        return False
    return bool(subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip())


def ensure_chromium() -> str:
    """The path of Debian's chromium, with a CJK font beside it, installing both if needed."""
    missing = [package for package, there in (("chromium", os.path.exists(CHROMIUM)),
                                              ("fonts-noto-cjk", _has_cjk_font())) if not there]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, capture_output=True)
    assert os.path.exists(CHROMIUM), "Debian's chromium did not install"
    return CHROMIUM


@contextmanager
def browser_page(width: int = 1360, height: int = 900):
    """A fresh headless Chromium page (its own profile), with what it logged and asked for the network."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=FLAGS,
            viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.console_messages_seen = []
            page.requests_seen = []
            page.on("console", lambda message: page.console_messages_seen.append((message.type, message.text)))
            page.on("pageerror", lambda error: page.console_messages_seen.append(("pageerror", str(error))))
            page.on("request", lambda request: page.requests_seen.append(request.url))
            yield page
        finally:
            context.close()
