"""URL redaction for logs and stored error text.

A URL's userinfo (`user:password@`) and query string (`?token=...`) often carry credentials,
and its fragment sometimes does; none of them may reach a log line or a column an admin can
read. `redact_url` keeps `scheme://host[:port]/path` of one URL, `redact_urls` does the same for
every URL inside free text (a log message, an exception's text, an HTTP answer's body).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # an annotation only: httpx loads with the first HTTP call (idle RSS)
    import httpx

__all__ = ["UNPARSEABLE_URL", "redact_url", "redact_urls"]

UNPARSEABLE_URL = "<unparseable URL>"
"""Stands in for a URL too broken to tell its host from its credentials."""

# A scheme, "://" (or JSON's escaped ":\/\/") and everything up to whitespace. Quotes, angle
# brackets and backslashes do not end a URL here: each may stand in a userinfo (a dealer's
# answer may echo its URL in any shape), and cutting a URL short before its "@" would leave the
# password behind. A URL followed by other text without a space takes that text with it; the
# redaction then drops at most the text after a "?" or "#", never keeps a credential.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*:(?://|\\/\\/)\S+")


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
    """`text` with every `scheme://...` URL in it (JSON-escaped ones too) passed through
    `redact_url`."""
    if "://" not in text and ":\\/\\/" not in text:
        return text
    return _URL.sub(lambda match: _redact_found(match.group()), text)


def _redact_found(found: str) -> str:
    """A URL as found in text, with what follows it up to the next whitespace: JSON's `\\/`
    read as `/`; the userinfo cut at the last "@" of the authority, whatever it holds; the
    query and fragment dropped; the text after the URL (from a quote or an angle bracket on)
    kept."""
    url = found.replace("\\/", "/")
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    host, end, after = _cut(authority.rpartition("@")[2], _ENDS_PATH)
    if not end and slash:  # the authority ran to the path: the path runs to its end
        path, end, after = _cut(tail, _ENDS_PATH)
        host = f"{host}/{path}"
    elif slash:  # the URL ended inside the authority: the rest is text
        after = f"{after}/{tail}"
    if end and end in "?#":  # drop the query and fragment, keep the text after them
        _, end, after = _cut(after, _ENDS_TEXT)
    return f"{scheme}://{host}{end}{after}"


_ENDS_TEXT = "\"'<>"
_ENDS_PATH = "?#" + _ENDS_TEXT


def _cut(text: str, ends: str) -> tuple[str, str, str]:
    """`text` split at the first of `ends`: (before, that character, after); ("", "") if none."""
    for i, ch in enumerate(text):
        if ch in ends:
            return text[:i], ch, text[i + 1 :]
    return text, "", ""
