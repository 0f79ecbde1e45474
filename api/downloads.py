"""Content-Disposition for downloads whose file name came from a user (RFC 6266 with RFC 5987 `filename*`)."""

from __future__ import annotations

from urllib.parse import quote


def content_disposition(disposition: str, filename: str) -> str:
    """`attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded`, safe for any file name.

    Header values are Latin-1 in HTTP; a name such as `空".py` would otherwise break the header (or the quoting)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename) or "download"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
