"""The browser app: static files served by the feed workers. No build step, no CDN."""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEB_DIR"]

WEB_DIR = Path(__file__).parent
