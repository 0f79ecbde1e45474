"""Shields-style badges: what a badge says (from a score) and how it looks (flat SVG, shields.io endpoint JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib
from PIL import ImageFont

# shields.io's named colours, so the SVG and the endpoint JSON (rendered by shields.io) look the same.
COLORS = {
    "brightgreen": "#4c1", "green": "#97ca00", "yellowgreen": "#a4a61d", "yellow": "#dfb317",
    "orange": "#fe7d37", "red": "#e05d44", "blue": "#007ec6", "lightgrey": "#9f9f9f", "grey": "#555",
}
LABEL_COLOR = "grey"
CACHE_SECONDS = 60  # how long browsers and GitHub's camo proxy may keep a badge
FONT_SIZE = 11  # px, as shields.io
HORIZONTAL_PADDING = 5  # px each side of a text
# Badges are drawn in "Verdana, DejaVu Sans"; DejaVu Sans (shipped with matplotlib) is the metric we measure
# with, it is what Debian's Chromium falls back to, and `textLength` pins the drawn width to the estimate.
_FONT_PATH = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@dataclass(frozen=True)
class Badge:
    """What a badge shows: `color` is a shields.io colour name."""

    label: str
    message: str
    color: str


def score_badge(label: str, score: float, max_score: float, passing: bool, *, show: str = "score") -> Badge:
    """Badge of a counted score; `show` is "score" (`87/100`) or "status" (`passing` / `failing`)."""
    fraction = score / max_score if max_score > 0 else 0.0
    if show == "status":
        return Badge(label, "passing" if passing else "failing", "brightgreen" if passing else "red")
    return Badge(label, f"{_number(score)}/{_number(max_score)}", score_color(fraction, passing))


def score_color(fraction: float, passing: bool) -> str:
    """Greens above the pass mark by how close to full marks, yellow to red below it."""
    if passing:
        return "brightgreen" if fraction >= 0.9 else "green" if fraction >= 0.75 else "yellowgreen"
    return "yellow" if fraction >= 0.5 else "orange" if fraction >= 0.25 else "red"


def pending_badge(label: str) -> Badge:
    return Badge(label, "grading...", "blue")


def empty_badge(label: str) -> Badge:
    return Badge(label, "no submission", "lightgrey")


def error_badge(label: str) -> Badge:
    return Badge(label, "error", "lightgrey")


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_PATH), FONT_SIZE * 10)


@lru_cache(maxsize=1024)
def text_width(text: str) -> float:
    """Rendered width in px of `text` at 11 px, measured on a 10x font for sub-pixel precision."""
    return _font().getlength(text) / 10


def render_svg(badge: Badge) -> str:
    """A flat shields-style SVG; every text is XML-escaped, widths come from the font's metrics."""
    label_text_width = round(text_width(badge.label) * 10)  # in tenths of a px, as the text is drawn at scale(.1)
    message_text_width = round(text_width(badge.message) * 10)
    label_width = round(label_text_width / 10) + 2 * HORIZONTAL_PADDING
    message_width = round(message_text_width / 10) + 2 * HORIZONTAL_PADDING
    width = label_width + message_width
    color = COLORS.get(badge.color, COLORS["lightgrey"])
    label_color = COLORS[LABEL_COLOR]
    label, message = escape(_printable(badge.label)), escape(_printable(badge.message))
    title = escape(_printable(f"{badge.label}: {badge.message}"))
    aria = escape(_printable(f"{badge.label}: {badge.message}"), {'"': "&quot;"})
    label_x = label_width * 5  # centre of the label, in tenths of a px
    message_x = label_width * 10 + message_width * 5
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{aria}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{label_width}" height="20" fill="{label_color}"/>'
        f'<rect x="{label_width}" width="{message_width}" height="20" fill="{color}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{label_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" '
        f'textLength="{label_text_width}">{label}</text>'
        f'<text x="{label_x}" y="140" transform="scale(.1)" fill="#fff" textLength="{label_text_width}">{label}</text>'
        f'<text aria-hidden="true" x="{message_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" '
        f'textLength="{message_text_width}">{message}</text>'
        f'<text x="{message_x}" y="140" transform="scale(.1)" fill="#fff" textLength="{message_text_width}">{message}</text>'
        "</g></svg>"
    )


def render_endpoint_json(badge: Badge) -> dict[str, object]:
    """The shields.io endpoint form (https://shields.io/badges/endpoint-badge), schemaVersion 1."""
    return {
        "schemaVersion": 1,
        "label": badge.label,
        "message": badge.message,
        "color": badge.color,
        "labelColor": LABEL_COLOR,
        "cacheSeconds": max(CACHE_SECONDS, 300),  # shields.io refuses less than 300 s for endpoint badges
        "isError": badge.message == "error",
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _printable(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters), so the SVG always parses."""
    return "".join(ch for ch in text if ch >= " " or ch in "\t")
