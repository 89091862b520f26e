"""Logging with secrets removed.

`redact` strips SAS signatures, account keys, connection-string secrets and bearer tokens from
any text. `configure_logging` installs a handler whose filter redacts every record, physai's and
third-party libraries' (azure, adlfs, mlflow) alike, since a filter on a handler sees every record
that reaches it while a filter on a logger would miss records from child loggers.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "***"

# (pattern, replacement): each keeps the key and hides the value.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # SAS query parameters: the signature is the secret; the rest of a SAS is kept readable.
    (re.compile(r"(?i)([?&;]sig=)[^&\s\"'#]+"), rf"\1{REDACTED}"),
    # Connection strings and key/value secrets.
    (
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|client_secret|password"
            r"|access_token|refresh_token)([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^;&\s,]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
    # HTTP authorization headers.
    (re.compile(r"(?i)\b(Bearer|Basic|SharedKey)\s+[A-Za-z0-9._~+/:=-]{8,}"), rf"\1 {REDACTED}"),
]

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value (an account key read from settings, say) wherever it appears."""
    if value and len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with every secret replaced by `***`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Render each record's message, redact it, and freeze it (no args left to re-expand)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so formatters do not print the raw one.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(level: int | str = logging.INFO) -> logging.Handler:
    """Send all logging to stderr through a redacting handler (idempotent); return it."""
    root = logging.getLogger()
    for handler in root.handlers:
        if any(isinstance(f, RedactingFilter) for f in handler.filters):
            root.setLevel(level)
            return handler
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def get_logger(name: str) -> logging.Logger:
    """A logger under the `physai` hierarchy."""
    return logging.getLogger(name if name.startswith("physai") else f"physai.{name}")
