"""Error classes of the upload program and the process exit code of each."""

from __future__ import annotations

from model_registry_upload_contract import EXIT_CONFIG, EXIT_OK, EXIT_REGISTRY, EXIT_TRANSFER

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_REGISTRY", "EXIT_TRANSFER"]


class UploadError(Exception):
    """Base class: ``str(exc)`` is the user-facing message."""

    exit_code = EXIT_TRANSFER


class ConfigError(UploadError):
    """Invalid or missing parameter."""

    exit_code = EXIT_CONFIG


class RegistryError(UploadError):
    """The model registry refused a request or could not be reached."""

    exit_code = EXIT_REGISTRY

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransferError(UploadError):
    """Reading the source or writing the destination failed."""

    exit_code = EXIT_TRANSFER


class UnsafeArchiveError(TransferError):
    """An archive member would land outside the extraction directory."""
