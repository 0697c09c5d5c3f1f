"""Error classes of the upload program and the process exit code of each."""

from __future__ import annotations

import ssl

from model_registry_upload_contract import EXIT_CONFIG, EXIT_OK, EXIT_REGISTRY, EXIT_TRANSFER

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_REGISTRY", "EXIT_TRANSFER"]


class UploadError(Exception):
    """Base class: ``str(exc)`` is the user-facing message."""

    exit_code = EXIT_TRANSFER


class ConfigError(UploadError):
    """Invalid or missing parameter."""

    exit_code = EXIT_CONFIG


class TLSVerificationError(ConfigError):
    """A server's certificate is not trusted with the CA parameters given (a private CA without
    its bundle, a self-signed server, a host name the certificate does not name): every retry
    would fail the same way, so the program stops at the first attempt with exit code 2, which
    also fails the Job at once instead of retrying it."""


def certificate_failure(exc: BaseException) -> str | None:
    """Why the certificate behind ``exc`` was refused (``self-signed certificate``...), or None
    when ``exc`` is no certificate verification failure. requests, urllib3, botocore and aiohttp
    each wrap the ``ssl`` error their own way (``args``, ``reason``, ``kwargs``, the cause): all
    of them are searched."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        err = todo.pop()
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        # aiohttp's certificate error is an ssl.CertificateError too, without its attributes:
        # the wrapped one, in its args, has them
        message = getattr(err, "verify_message", None) or getattr(err, "reason", None)
        if isinstance(err, ssl.SSLCertVerificationError) and isinstance(message, str):
            return message
        kwargs = getattr(err, "kwargs", None)
        todo += [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
        todo += list(kwargs.values()) if isinstance(kwargs, dict) else []
    return None


def tls_verification_failed(server: str, reason: str, ca_parameters: str) -> TLSVerificationError:
    """The error for a refused certificate of ``server`` (no credentials in it), naming the
    parameters that give its CA."""
    return TLSVerificationError(
        f"{server}: TLS verification failed: the server's certificate is not trusted ({reason}); "
        f"give its CA with {ca_parameters}"
    )


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
