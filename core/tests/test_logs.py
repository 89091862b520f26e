"""Secrets never reach a log line or an error message."""

from __future__ import annotations

import logging

import pytest

from physai.core.errors import PhysaiError, StorageError, UserError
from physai.core.logs import REDACTED, RedactingFilter, configure_logging, redact, register_secret

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://a.blob.core.windows.net/c/x?sv=2025&sp=r&sig=abc%2Fdef%3D HTTP", "abc%2Fdef"),
        ("url=http://127.0.0.1:10000/devstoreaccount1/c?se=1&sig=QWERTY12&sp=r", "QWERTY12"),
        (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};", KEY),
        ("Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=K3yK3yK3y=", "K3yK3yK3y"),
        ("Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.payload.sig", "eyJ0eXAiOiJKV1Q"),
        ("Authorization: SharedKey devstoreaccount1:c2lnbmF0dXJlc2ln", "c2lnbmF0dXJl"),
        ('{"client_secret": "hunter2hunter2"}', "hunter2"),
        ("password=correct-horse-battery", "correct-horse"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_keeps_harmless_text() -> None:
    text = "copied 3 files to az://datasets/pick/v3 (sp=r is a permission, not a secret)"
    assert redact(text) == text


def test_registered_secret_is_redacted() -> None:
    register_secret("plain-secret-value-123")
    assert redact("token plain-secret-value-123 used") == "token *** used"


def test_errors_are_redacted_at_construction() -> None:
    error = StorageError(f"upload failed: AccountKey={KEY}; retry later")
    assert KEY not in str(error) and KEY not in repr(error)
    assert isinstance(error, PhysaiError) and error.exit_code == 1
    assert UserError("a\nb   c").message == "a b c"
    assert UserError("x").exit_code == 2


def test_filter_redacts_args_and_tracebacks() -> None:
    record = logging.LogRecord(
        "azure.core", logging.DEBUG, __file__, 1, "url: %s", ("?sig=ZZZZ",), None
    )
    try:
        raise RuntimeError(f"boom AccountKey={KEY}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert "ZZZZ" not in record.getMessage()
    assert record.exc_text is not None and KEY not in record.exc_text and "boom" in record.exc_text


def test_configured_handler_redacts_third_party_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    handler = configure_logging(logging.DEBUG)
    try:
        assert configure_logging(logging.DEBUG) is handler  # idempotent
        logging.getLogger("azure.storage.blob._shared").debug(
            "Request URL: '%s'", "/c/x?sig=LEAKED1"
        )
        logging.getLogger("physai.core.storage").info("key AccountKey=%s", KEY)
        err = capsys.readouterr().err
        assert "LEAKED1" not in err and KEY not in err
        assert "Request URL" in err and "AccountKey=***" in err
    finally:
        logging.getLogger().removeHandler(handler)
