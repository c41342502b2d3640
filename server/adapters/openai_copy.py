"""OpenAI copywriter: one short personalised opening line per campaign recipient, or none.

Used by EmailReengagement only when `CCL_OPENAI_API_KEY` is set; the template's own text is the
deterministic fallback, and a message records which engine wrote its line (`ENGINE` or
`TEMPLATE_ENGINE`). What reaches OpenAI is a fixed system prompt and, per recipient, their first
name and vehicle, nothing else; every call is made with `store=False`, so the provider keeps no
copy of it.

Time is bounded twice: each attempt by the client's `timeout` (with the client's own few
retries on 408/409/429/5xx), and the whole batch by `deadline_seconds` (`asyncio.timeout`).
Whatever is unanswered at the deadline, failed, or fails `sanitize_line` is simply missing from
the result: the caller falls back to the template for it. Failures are logged by exception class
only, never with a name or a vehicle.

`openai` (and its HTTP stack) is imported in the constructor, not at module import: an idle
server without a key never loads it (tests/test_idle_memory.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "ENGINE",
    "MAX_LINE_CHARS",
    "SYSTEM_PROMPT",
    "TEMPLATE_ENGINE",
    "CopySubject",
    "OpenAICopywriter",
    "sanitize_line",
    "user_message",
]

log = logging.getLogger(__name__)

ENGINE = "openai"
"""The engine recorded on a message whose opening line this module wrote."""
TEMPLATE_ENGINE = "template"
"""The engine recorded on a message that kept the template's own text (the fallback)."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
MAX_LINE_CHARS = 200
# Inputs are cut to these lengths: a first name and a vehicle are short; anything longer is
# either a mistake or an attempt to smuggle instructions into the prompt.
MAX_NAME_CHARS = 40
MAX_VEHICLE_CHARS = 80
# One sentence needs few tokens; the cap also bounds cost and time.
MAX_COMPLETION_TOKENS = 80

SYSTEM_PROMPT = (
    "You write the opening line of a friendly re-engagement email from an auto-finance company "
    "to someone who started a car loan application and has not finished it. Write exactly one "
    "short, warm sentence (at most 30 words) in plain text. You may use only the first name and "
    "the vehicle given. Never promise or suggest approval, rates, payments, terms or savings; "
    "never add links, prices, placeholders, emoji or any other personal detail. Answer with the "
    "sentence only."
)

# What may not appear in a line: it is placed into an email template (Jinja2 syntax, HTML) and
# into Mailgun recipient variables (`%recipient.x%`).
_FORBIDDEN_CHARS = frozenset("<>%{}")
_URL_LIKE = re.compile(
    r"(?i)"
    r"[a-z][a-z0-9+.\-]*://"  # any scheme://
    r"|\bwww\."
    r"|\bmailto:"
    r"|\b[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.(?:com|net|org|io|co|us|info|biz|ly|app|me|link|ai)\b"
    r"|\b[a-z0-9\-]+\.[a-z]{2,}/"  # example.xyz/path
)
_QUOTES = "\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb"


@dataclass(frozen=True)
class CopySubject:
    """One recipient as the copywriter sees them: a key of the caller's (a message id, never
    sent anywhere), a first name and a vehicle. Nothing else about a lead may go in here."""

    key: str
    first_name: str
    vehicle: str


def _clean_input(value: str, limit: int) -> str:
    # One line of printable text: control characters and line breaks would let a lead's own
    # data restructure the prompt.
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value)
    return " ".join(text.split())[:limit].strip()


def user_message(subject: CopySubject) -> str | None:
    """The user message for one subject (first name and vehicle only), or None when it has
    neither, so there is nothing to personalise."""
    name = _clean_input(subject.first_name, MAX_NAME_CHARS)
    vehicle = _clean_input(subject.vehicle, MAX_VEHICLE_CHARS)
    lines = []
    if name:
        lines.append(f"First name: {name}")
    if vehicle:
        lines.append(f"Vehicle: {vehicle}")
    return "\n".join(lines) if lines else None


def sanitize_line(raw: str | None) -> str | None:
    """The model's answer as one safe line, or None to reject it: surrounding whitespace and
    quotes stripped; rejected when empty, when it has a line break or any other control
    character, more than `MAX_LINE_CHARS` characters, anything like a URL, or any of `<>%{}`."""
    if raw is None:
        return None
    text = raw.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if not text or len(text) > MAX_LINE_CHARS:
        return None
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _FORBIDDEN_CHARS or category in ("Cc", "Zl", "Zp") or ch == "\u0085":
            return None
    if _URL_LIKE.search(text):
        return None
    return text


class OpenAICopywriter:
    """Writes opening lines through OpenAI's chat completions API. Build it only when a key is
    configured (`ValueError` otherwise); `aclose()` when done."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        timeout_seconds: float = 10.0,
        max_concurrency: int = 8,
        *,
        max_retries: int = 1,
    ) -> None:
        if not api_key.strip():
            raise ValueError("an OpenAI API key is required")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        from openai import AsyncOpenAI  # here, not at module level: idle servers never load it

        self.model = model
        self._client: AsyncOpenAI = AsyncOpenAI(
            api_key=api_key.strip(),
            base_url=base_url.rstrip("/"),
            timeout=timeout_seconds,
            max_retries=max_retries,
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)

    async def aclose(self) -> None:
        await self._client.close()

    async def opening_lines(
        self, subjects: Sequence[CopySubject], *, deadline_seconds: float
    ) -> dict[str, str]:
        """`{key: line}` for every subject answered well within `deadline_seconds`; the others
        are missing (the caller keeps the template's text for them). Never raises for a failed
        call or the deadline."""
        lines: dict[str, str] = {}
        pending = {s.key: s for s in subjects}  # one call per key
        if not pending or deadline_seconds <= 0:
            return lines

        async def one(subject: CopySubject) -> None:
            line = await self._line(subject)
            if line is not None:
                lines[subject.key] = line

        try:
            async with asyncio.timeout(deadline_seconds), asyncio.TaskGroup() as group:
                for subject in pending.values():
                    group.create_task(one(subject))
        except TimeoutError:
            log.info(
                "openai opening lines: deadline reached, %d of %d unanswered",
                len(pending) - len(lines),
                len(pending),
            )
        return lines

    async def _line(self, subject: CopySubject) -> str | None:
        content = user_message(subject)
        if content is None:
            return None
        async with self._semaphore:
            try:
                completion = await self._client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": content},
                    ],
                    store=False,
                    n=1,
                    max_completion_tokens=MAX_COMPLETION_TOKENS,
                )
                raw = completion.choices[0].message.content if completion.choices else None
            except Exception as e:  # any failure means "no line": the template's text is used
                # The class name only: an exception's text may quote the request.
                log.warning("openai opening line failed: %s", type(e).__name__)
                return None
        line = sanitize_line(raw)
        if line is None:
            log.info("openai opening line rejected by the sanitiser")
        return line
