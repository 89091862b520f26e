"""One exception family for physai.

A `UserError` is something the user can fix (bad input, missing setting, missing optional
dependency): the CLI prints its message as one line and exits with code 2. Other `PhysaiError`s
(a job failed, storage went away) print one line and exit with code 1. Any other exception is a
bug and keeps its traceback. Every message is passed through `redact`, so a SAS token or
account key that slipped into an error never reaches a terminal or a log.
"""

from __future__ import annotations

from physai.core.logs import redact


class PhysaiError(Exception):
    """Base of every error physai raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        """The redacted message, folded to one line."""
        return " ".join(str(self).split())

    def __reduce__(self) -> tuple[object, tuple[type[PhysaiError], str]]:
        # Rebuilt from the message alone, whatever the subclass's constructor takes, so an
        # error raised in a worker process reaches the parent as itself (pickled).
        return _rebuild, (type(self), str(self))


def _rebuild(cls: type[PhysaiError], message: str) -> PhysaiError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


class UserError(PhysaiError):
    """Bad input or configuration: one clear line, exit code 2, nothing written."""

    exit_code = 2


class ConfigError(UserError):
    """A setting is missing or invalid."""


class UriError(UserError, ValueError):
    """A URI or URL is malformed, unsupported or unsafe."""


class MissingDependencyError(UserError):
    """An optional extra or external tool is needed and not installed."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not installed: {install}")


class StorageError(PhysaiError):
    """A storage operation failed (after the URL itself was accepted)."""


class NotFoundError(UserError):
    """A file, run, model or dataset that was named does not exist."""


class JobError(PhysaiError):
    """A job failed, was cancelled, or could not be rendered for its backend."""
