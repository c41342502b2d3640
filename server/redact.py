"""URL redaction for logs and stored error text.

A URL's userinfo (`user:password@`) and query string (`?token=...`) often carry credentials,
and its fragment sometimes does; none of them may reach a log line or a column an admin can
read. `redact_url` keeps `scheme://host[:port]/path` of one URL, `redact_urls` does the same for
every URL inside free text (a log message, an exception's text, an HTTP answer's body).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = ["UNPARSEABLE_URL", "redact_url", "redact_urls"]

UNPARSEABLE_URL = "<unparseable URL>"
"""Stands in for a URL too broken to tell its host from its credentials."""

# A scheme, "://" and everything up to whitespace, a double quote, angle brackets or a backslash:
# none of them may appear raw in a URL, and they end one in messages, JSON and tracebacks. A
# single quote is allowed in userinfo, so it does not end a URL here: cutting a URL short before
# its "@" would leave the password behind.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"<>\\]+")


def redact_url(url: str | httpx.URL) -> str:
    """`scheme://host[:port]/path` of `url`: no userinfo, query string or fragment.

    >>> redact_url("https://user:secret@crm.example.com:8443/hook?token=abc#x")
    'https://crm.example.com:8443/hook'
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 host
        return UNPARSEABLE_URL
    # The last "@" ends the userinfo: a raw "@" in a password must not leave part of it behind.
    host = parts.netloc.rpartition("@")[2]
    if not host and str(url).startswith(f"{parts.scheme}://"):
        return f"{parts.scheme}://{parts.path}"  # sqlite:///file keeps its empty authority
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """`text` with every `scheme://...` URL in it passed through `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group()), text)
