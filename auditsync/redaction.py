"""Keeps secrets out of everything that leaves the process: one registry of secret values, one scrubber.

Every token and key is registered the moment it is read (settings, Key Vault), for the life of the
process: a rotated token's old value stays registered, which costs nothing and keeps an old log line
clean. The scrubber masks, besides each whole value:

- any run of ``FRAGMENT`` (12) or more consecutive characters of a secret: a vendor that echoes a
  24-character prefix of the token, or a message cut in the middle of one, still shows ``***``;
- the same in the secret's URL-encoded forms (``%2F``/``%2f``, ``+`` for space) and JSON-escaped forms
  (``\\"``, ``\\\\``, ``\\/``, ``\\uXXXX``): every encoding we may meet works character by character, so a
  fragment of an encoded secret is a fragment of the encoded whole;
- anything shaped like a JWT or a ``Bearer`` credential, even when we never saw the value.

Base64 forms are deliberately not covered: nothing in this process base64-encodes a secret (the
workspace key is only decoded and used as an HMAC key), and base64 of a fragment depends on its
alignment, so matching it would mean three shifted encodings of every fragment for no known path.

Logs are scrubbed by a ``LogRecord`` factory rather than by filters: a filter sees only the records of
the logger or handler it is attached to, while the factory sees every record created in the process,
whichever logger made it and whichever handlers (ours, pytest's, the Azure Functions host's) format it
later. The message (with its arguments), the exception text with its traceback and ``stack_info`` are
scrubbed when the record is made; ``extra`` fields are set after the factory runs and are not covered,
so never pass a secret there.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: A run of this many consecutive characters of a secret is masked wherever it appears.
FRAGMENT = 12
#: Values shorter than this are not secrets worth matching (they would mask ordinary words).
MIN_SECRET = 6
MASK = "***"

#: Anything shaped like a JWT or a bearer credential is masked even when we do not know the value.
_TOKEN_SHAPES = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.?[\w-]*|(?i:bearer)\s+[\w.~+/=-]{8,}")
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_RUNS = re.compile(rf"[^\s]{{{FRAGMENT},}}")
_EVERYTHING = re.compile(r"(?s).+")


def encoded_forms(secret: str) -> set[str]:
    """The secret as it may appear in text: as is, URL-encoded and JSON-escaped."""
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote(secret, safe="/:"), quote_plus(secret, safe="")):
        forms.add(encoded)
        forms.add(_PERCENT.sub(lambda m: m.group(0).lower(), encoded))
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.add(escaped)
        forms.add(escaped.replace("/", "\\/"))
    return forms


class _Registry:
    """Every secret the process learned: whole values and their ``FRAGMENT``-long pieces.

    Writers take a lock and only add; the scrubber (called from any thread, inside logging) reads
    without one: a membership test on a set is atomic in CPython, and a piece added while a text is
    being scanned is simply caught from the next text on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._short: tuple[str, ...] = ()  # secrets (and forms) too short to have fragments
        self._pieces: set[str] = set()
        # Pieces hold no whitespace (secrets with inner whitespace are refused), so only runs of 12+
        # non-space characters need looking at: most of a log line is skipped. A registered value with
        # inner whitespace (read before it was refused) switches to scanning every position.
        self._runs = _RUNS

    def add(self, secrets: Iterable[str]) -> None:
        fresh = [s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET and s not in self._known]
        if not fresh:
            return
        with self._lock:
            short = set(self._short)
            for secret in fresh:
                for form in encoded_forms(secret):
                    if len(form) < FRAGMENT:
                        short.add(form)
                        continue
                    new = {form[i : i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)}
                    if any(not piece.isprintable() or " " in piece for piece in new):
                        self._runs = _EVERYTHING
                    self._pieces.update(new)
                self._known.add(secret)
            self._short = tuple(sorted(short, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        pieces = self._pieces
        if pieces and len(text) >= FRAGMENT:
            covered: list[tuple[int, int]] = []
            for run in self._runs.finditer(text):
                for i in range(run.start(), run.end() - FRAGMENT + 1):
                    if text[i : i + FRAGMENT] in pieces:
                        if covered and i <= covered[-1][1]:
                            covered[-1] = (covered[-1][0], i + FRAGMENT)
                        else:
                            covered.append((i, i + FRAGMENT))
            if covered:
                parts, last = [], 0
                for start, end in covered:
                    parts.append(text[last:start])
                    parts.append(MASK)
                    last = end
                parts.append(text[last:])
                text = "".join(parts)
        for secret in self._short:
            if secret in text:
                text = text.replace(secret, MASK)
        return _TOKEN_SHAPES.sub(MASK, text)


_REGISTRY = _Registry()


def register(*secrets: str) -> None:
    """Make ``secrets`` (and their encoded forms and fragments) unprintable, process-wide, from now on."""
    _REGISTRY.add(secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret, fragment and token-shaped string replaced by ``***``."""
    return _REGISTRY.scrub(text)


class Redactor:
    """A handle on the process-wide registry, for code that is handed "the thing that redacts".

    ``Redactor(secrets)`` and ``add`` register; calling it redacts with everything registered so far.
    Always redact before truncating: a cut-off secret is still caught as a fragment only if at least
    ``FRAGMENT`` characters of it remain.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        register(*secrets)

    def add(self, *secrets: str) -> None:
        register(*secrets)

    def __call__(self, text: str) -> str:
        return redact(text)


# -- logging -------------------------------------------------------------------------------------------
def install_log_redaction() -> None:
    """Scrub every log record made in this process from now on (idempotent; call it at every entry point)."""
    from auditsync.log_records import add_record_hook

    add_record_hook(scrub_record)


def scrub_record(record: logging.LogRecord) -> None:
    """Redact a record's message, arguments, exception (with its traceback) and stack in place.

    A record that changed carries its message pre-formatted (``args`` None) and its exception as text
    (``exc_text``, ``exc_info`` None): formatters print ``exc_text`` as is, and exporters that would
    format ``exc_info`` themselves never see the original exception.
    """
    try:
        message = record.getMessage()
    except Exception:  # the handler would print msg and args raw in its "Logging error" report
        record.msg, record.args = redact(f"unformattable log message {record.msg!r}"), None
    else:
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact(text)
        if clean != text:
            record.exc_text, record.exc_info = clean, None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
