"""The S3 calls of the upload program, on botocore's S3 client (through boto3).

botocore signs (SigV4), resolves the credentials (:mod:`.s3_credentials`), picks the addressing
style (path-style or virtual-hosted, ``auto`` being botocore's default: virtual-hosted on AWS,
path-style for a custom endpoint), adds the checksums current S3 servers expect (CRC32 on every
PUT and part, the parts' checksums in the multipart completion, as s3transfer does) and retries
throttling, 5xx answers and broken connections (standard retry mode). This module only turns
botocore's answers and errors into the program's (:class:`S3Error`, a :class:`TransferError`
whose message names the call and the object) and reads ranged GETs straight into the caller's
buffer.

The multipart loop itself stays in :mod:`.destinations.s3` (on these calls): s3transfer's
``upload_fileobj`` (``TransferManager.upload``) was read for it. For a stream that cannot seek
it reads ahead to choose between one PUT and a multipart upload, uploads whatever a stream
gives before its end (a source that ends early becomes a short object, not an error), and
enlarges the part size on its own for more than 10,000 parts, which the destination's
"already uploaded" ETag check has to know. The loop here is short and keeps those checks.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config
from botocore.response import StreamingBody

from .config import S3Location, label
from .errors import TransferError, UploadError, certificate_failure, tls_verification_failed
from .s3_credentials import resolve_session

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client as BotoS3Client

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
"""Signing region when neither the parameters, the AWS configuration nor the bucket tell one."""
MAX_ATTEMPTS = 5
CHECKSUM = "CRC32"
"""The algorithm of the request checksums (botocore's and s3transfer's default)."""
META_PREFIX = "x-amz-meta-"

T = TypeVar("T")


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str = ""
    """As the server gives it, quotes included; empty when it gives none."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata (``x-amz-meta-*`` headers, names lower-cased without the prefix); only
    :meth:`S3Client.stat` reads it."""


@dataclass(frozen=True)
class Part:
    """An uploaded part: what the multipart completion lists."""

    etag: str
    checksum: str | None = None


class S3Error(TransferError):
    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _no_retry_on_tls_errors(caught_exception: Exception | None = None, **_: Any) -> None:  # noqa: ANN401
    """A TLS verification failure will not fix itself: fail at once instead of backing off
    (botocore's standard mode retries every connection error)."""
    if isinstance(caught_exception, botocore.exceptions.SSLError):
        raise caught_exception


class S3Client:
    """One S3 endpoint and set of credentials; ``side`` (``source`` / ``destination``) names the
    parameters in configuration messages."""

    def __init__(
        self,
        loc: S3Location,
        *,
        timeout: float = 60.0,
        verify: bool | str = True,
        pool: int = 10,
        side: str | None = None,
    ) -> None:
        for name in ("botocore", "boto3", "s3transfer"):  # their DEBUG output is every header and event
            logger = logging.getLogger(name)
            logger.setLevel(max(logging.getLogger().level, logging.INFO))
        session = resolve_session(loc, side)
        self.endpoint = loc.endpoint
        self.side = side
        self._config = Config(
            signature_version="s3v4",
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=pool,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            # ranged reads only: a whole object's checksum never applies to them
            response_checksum_validation="when_required",
            s3={"addressing_style": loc.addressing_style} if loc.addressing_style != "auto" else None,
            user_agent_extra="model-registry-upload",
        )
        self._session = session
        self._verify: bool | str | None = str(loc.ca_bundle) if loc.ca_bundle else (None if verify is True else verify)
        region = loc.region or session.region_name
        if region:
            self.region = region
            self.client = self._client(region)
        else:
            self.client = self._client(DEFAULT_REGION)
            self.region = self._bucket_region(loc.bucket) or DEFAULT_REGION
            if self.region != DEFAULT_REGION:
                self.client = self._client(self.region)
        log.debug("S3 client for %s: region %s", self.endpoint or "AWS", self.region)

    def _client(self, region: str) -> BotoS3Client:
        client: BotoS3Client = self._session.client(
            "s3", region_name=region, endpoint_url=self.endpoint, verify=self._verify, config=self._config
        )
        client.meta.events.register_first("needs-retry.s3", _no_retry_on_tls_errors)
        if self.endpoint is None:
            self.endpoint = client.meta.endpoint_url
        return client

    def _bucket_region(self, bucket: str) -> str | None:
        """The bucket's region, as S3 tells it in ``x-amz-bucket-region`` (also on an error)."""
        try:
            headers = self.client.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"]
        except botocore.exceptions.ClientError as exc:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except botocore.exceptions.SSLError as exc:
            raise self._tls_error(exc) from None  # trying again with the next call would fail the same way
        except botocore.exceptions.BotoCoreError:
            return None  # unreachable: the first real call says so
        region = headers.get("x-amz-bucket-region")
        if region:
            log.info("S3 bucket %s is in region %s", bucket, region)
        return region

    # -- errors ---------------------------------------------------------------------------

    def _call(self, method: str, bucket: str, key: str, fn: Callable[..., T], **kwargs: Any) -> T:  # noqa: ANN401
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        try:
            return fn(**kwargs)
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(err.get("Code") or f"HTTP{status}")
            message = str(err.get("Message") or "")
            if code in ("404", "NotFound") and method == "HEAD":
                code, message = "NoSuchKey", "The specified key does not exist."
            elif code in ("403", "Forbidden") and method == "HEAD":
                code, message = "AccessDenied", "Access Denied"
            elif code.isdigit():
                code = f"HTTP{code}"
            raise S3Error(f"S3 {code} on {method} {where}: {message}", code, status) from None
        except botocore.exceptions.SSLError as exc:
            raise self._tls_error(exc) from None
        except botocore.exceptions.NoCredentialsError:
            raise TransferError(f"S3 {method} {where}: no credentials") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise TransferError(
                f"S3 endpoint {self.endpoint} unreachable: {exc.__class__.__name__} ({method} {where})"
            ) from None

    def _tls_error(self, exc: botocore.exceptions.SSLError) -> UploadError:
        """A refused certificate is a configuration error naming the CA bundle parameter; another
        TLS failure (a handshake cut short) a transfer error."""
        reason = certificate_failure(exc)
        if reason is None:
            return TransferError(f"S3 endpoint {self.endpoint}: TLS error: {exc}")
        ca = label(f"{self.side}_aws_ca_bundle") if self.side else "the S3 CA bundle parameter"
        return tls_verification_failed(f"S3 endpoint {self.endpoint}", reason, ca)

    # -- operations ----------------------------------------------------------------------

    def stat(self, bucket: str, key: str) -> S3Object | None:
        """Size, ETag and user metadata of an object, ``None`` when it does not exist."""
        try:
            resp = self._call("HEAD", bucket, key, self.client.head_object, Bucket=bucket, Key=key)
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        metadata = {k.lower(): v for k, v in resp.get("Metadata", {}).items()}
        return S3Object(key, int(resp.get("ContentLength", 0)), resp.get("ETag", ""), metadata)

    def head(self, bucket: str, key: str) -> int | None:
        """Size of an object, ``None`` when it does not exist."""
        obj = self.stat(bucket, key)
        return None if obj is None else obj.size

    def list_objects(self, bucket: str, prefix: str) -> Iterator[S3Object]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("GET", bucket, "", self.client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                yield S3Object(item.get("Key", ""), int(item.get("Size", 0)), item.get("ETag", ""))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def read_into(self, bucket: str, key: str, start: int, view: memoryview) -> int:
        """Bytes ``start .. start + len(view) - 1`` of the object into ``view``; returns how many
        arrived. A network error while reading the body is a (retryable) :class:`TransferError`."""
        what = f"s3://{bucket}/{key}"
        end = start + len(view) - 1
        ranged = f"bytes={start}-{end}"
        resp = self._call("GET", bucket, key, self.client.get_object, Bucket=bucket, Key=key, Range=ranged)
        body = resp["Body"]
        status = int(resp["ResponseMetadata"]["HTTPStatusCode"])
        length = resp.get("ContentLength")
        try:
            if (status != 206 and not (status == 200 and start == 0)) or (length is not None and length != len(view)):
                raise TransferError(
                    f"{what}: bad answer to a ranged read at {start} (HTTP {status}, {length} bytes for {len(view)})"
                )
            return _body_readinto(body, view, what)
        finally:
            body.close()

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` inclusive."""
        buf = bytearray(end - start + 1)
        got = self.read_into(bucket, key, start, memoryview(buf))
        if got != len(buf):
            raise TransferError(f"S3 short read on s3://{bucket}/{key} at {start}: {got} bytes")
        return bytes(buf)

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        self._call(
            "PUT",
            bucket,
            key,
            self.client.put_object,
            Bucket=bucket,
            Key=key,
            Body=body,
            Metadata=metadata or {},
            ChecksumAlgorithm=CHECKSUM,
        )

    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str] | None = None) -> str:
        resp = self._call(
            "POST",
            bucket,
            key,
            self.client.create_multipart_upload,
            Bucket=bucket,
            Key=key,
            Metadata=metadata or {},
            ChecksumAlgorithm=CHECKSUM,
        )
        upload_id = resp.get("UploadId")
        if not upload_id:
            raise TransferError(f"S3 create multipart upload on s3://{bucket}/{key}: no UploadId")
        return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> Part:
        resp = self._call(
            "PUT",
            bucket,
            key,
            self.client.upload_part,
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=CHECKSUM,
        )
        return Part(resp.get("ETag", ""), resp.get("ChecksumCRC32"))

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[Part]) -> None:
        listed: list[Any] = []
        for number, part in enumerate(parts, start=1):
            entry: dict[str, Any] = {"PartNumber": number, "ETag": part.etag}
            if part.checksum:
                entry["ChecksumCRC32"] = part.checksum
            listed.append(entry)
        self._call(
            "POST",
            bucket,
            key,
            self.client.complete_multipart_upload,
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self._call(
                "DELETE", bucket, key, self.client.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=upload_id
            )
        except TransferError as exc:
            log.warning("could not abort multipart upload of s3://%s/%s: %s", bucket, key, exc)


_READ_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    botocore.exceptions.BotoCoreError,
)


def _body_readinto(body: StreamingBody, view: memoryview, what: str) -> int:
    """Read ``body`` into ``view`` until it is full or the body ends.

    Straight from the socket into the buffer (``http.client``'s ``readinto``) when the body is
    a plain, unencoded one; otherwise through ``read`` (a copy)."""
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    headers = getattr(raw, "headers", {}) or {}
    direct = (
        type(body) is StreamingBody
        and isinstance(fp, http.client.HTTPResponse)
        and headers.get("Content-Encoding", "identity") in ("", "identity")
    )
    got = 0
    try:
        while got < len(view):
            if direct:
                assert isinstance(fp, http.client.HTTPResponse)
                n = fp.readinto(view[got:])
            else:
                data = body.read(min(len(view) - got, 1024 * 1024))
                n = len(data)
                view[got : got + n] = data
            if not n:
                break
            got += n
        if direct and got == len(view) and fp is not None and fp.isclosed() and raw is not None:
            raw.release_conn()  # body fully read: the connection goes back to the pool
    except _READ_ERRORS as exc:
        raise TransferError(f"{what}: read failed after {got} bytes: {exc.__class__.__name__}: {exc}") from None
    return got
