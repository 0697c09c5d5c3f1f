"""Minimal S3 client over ``requests`` with AWS Signature Version 4.

Path-style requests only (``endpoint/bucket/key``), which every S3-compatible server accepts.
Only what the upload program needs: list, head, ranged get, put, multipart upload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET  # noqa: S405 - parses responses of the configured S3 endpoint
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from .config import S3Location
from .errors import TransferError
from .httputil import session_with_retries

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str = ""
    """As the server gives it, quotes included; empty when it gives none."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata (``x-amz-meta-*`` headers, names lower-cased without the prefix); only
    :meth:`S3Client.stat` reads it."""


class S3Error(TransferError):
    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


META_PREFIX = "x-amz-meta-"


def _meta_headers(metadata: dict[str, str] | None) -> dict[str, str]:
    return {META_PREFIX + k: v for k, v in (metadata or {}).items()}


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _uri_encode(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


class S3Client:
    def __init__(self, loc: S3Location, *, timeout: float = 60.0, verify: bool | str = True, pool: int = 10) -> None:
        self.region = loc.region or "us-east-1"
        self.endpoint = (loc.endpoint or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        self.access_key = loc.access_key_id.get_secret_value()
        self.secret_key = loc.secret_access_key.get_secret_value()
        self.timeout = timeout
        self.verify: bool | str = str(loc.ca_bundle) if loc.ca_bundle else verify
        self.session = session_with_retries(
            methods=frozenset({"GET", "HEAD", "PUT"}), total=4, statuses=(500, 502, 503, 504), pool=pool
        )

    # -- signing -------------------------------------------------------------------------

    def _headers(
        self, method: str, path: str, query: dict[str, str], payload_hash: str, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = now.strftime("%Y%m%d")
        host = self.endpoint.split("://", 1)[1].split("/", 1)[0]
        headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        for name, value in (extra or {}).items():
            headers[name.lower()] = value
        canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query.items()))
        signed = sorted(headers)
        canonical_headers = "".join(f"{k}:{headers[k].strip()}\n" for k in signed)
        signed_headers = ";".join(signed)
        canonical = "\n".join(
            [method, _uri_encode(path, safe="/-_.~"), canonical_query, canonical_headers, signed_headers, payload_hash]
        )
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _sign(("AWS4" + self.secret_key).encode(), date)
        key = _sign(key, self.region)
        key = _sign(key, "s3")
        key = _sign(key, "aws4_request")
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={signed_headers}, "
            f"Signature={signature}"
        )
        del headers["host"]
        return headers

    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: dict[str, str] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200, 204, 206),
    ) -> requests.Response:
        path = f"/{bucket}" + (f"/{key}" if key else "")
        q = query or {}
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        hdrs = self._headers(method, path, q, payload_hash, headers)
        url = self.endpoint + _uri_encode(path, safe="/-_.~")
        if q:
            url += "?" + "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(q.items()))
        try:
            resp = self.session.request(
                method, url, data=body or None, headers=hdrs, stream=stream, timeout=self.timeout, verify=self.verify
            )
        except requests.exceptions.RequestException as exc:
            raise TransferError(f"S3 endpoint {self.endpoint} unreachable: {exc.__class__.__name__}") from None
        if resp.status_code not in ok:
            self._raise(resp, method, bucket, key)
        return resp

    def _raise(self, resp: requests.Response, method: str, bucket: str, key: str) -> None:
        code, message = f"HTTP{resp.status_code}", resp.reason or ""
        if resp.content:
            try:
                root = ET.fromstring(resp.content)  # noqa: S314 - response of the configured endpoint
                code = root.findtext("Code") or code
                message = root.findtext("Message") or message
            except ET.ParseError:
                pass
        elif method == "HEAD" and resp.status_code == 404:
            code, message = "NoSuchKey", "The specified key does not exist."
        elif method == "HEAD" and resp.status_code == 403:
            code, message = "AccessDenied", "Access Denied"
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        raise S3Error(f"S3 {code} on {method} {where}: {message}", code, resp.status_code)

    # -- operations ----------------------------------------------------------------------

    def stat(self, bucket: str, key: str) -> S3Object | None:
        """Size and ETag of an object, ``None`` when it does not exist."""
        try:
            resp = self.request("HEAD", bucket, key)
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        metadata = {
            k.lower().removeprefix(META_PREFIX): v for k, v in resp.headers.items() if k.lower().startswith(META_PREFIX)
        }
        return S3Object(key, int(resp.headers.get("Content-Length", "0")), resp.headers.get("ETag", ""), metadata)

    def head(self, bucket: str, key: str) -> int | None:
        """Size of an object, ``None`` when it does not exist."""
        obj = self.stat(bucket, key)
        return None if obj is None else obj.size

    def list_objects(self, bucket: str, prefix: str) -> Iterator[S3Object]:
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self.request("GET", bucket, query=query).content)  # noqa: S314
            ns = root.tag.split("}", 1)[0] + "}" if root.tag.startswith("{") else ""
            for item in root.findall(f"{ns}Contents"):
                yield S3Object(
                    item.findtext(f"{ns}Key") or "",
                    int(item.findtext(f"{ns}Size") or 0),
                    item.findtext(f"{ns}ETag") or "",
                )
            if (root.findtext(f"{ns}IsTruncated") or "false").lower() != "true":
                return
            token = root.findtext(f"{ns}NextContinuationToken")
            if not token:
                return

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` inclusive."""
        resp = self.request("GET", bucket, key, headers={"Range": f"bytes={start}-{end}"})
        data = resp.content
        if len(data) != end - start + 1:
            raise TransferError(f"S3 short read on s3://{bucket}/{key} at {start}: {len(data)} bytes")
        return data

    def open_range(self, bucket: str, key: str, start: int, end: int) -> requests.Response:
        """Streamed response of bytes ``start..end`` inclusive (the caller reads and closes it)."""
        return self.request("GET", bucket, key, headers={"Range": f"bytes={start}-{end}"}, stream=True)

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        self.request("PUT", bucket, key, body=body, headers=_meta_headers(metadata))

    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str] | None = None) -> str:
        resp = self.request("POST", bucket, key, query={"uploads": ""}, headers=_meta_headers(metadata))
        root = ET.fromstring(resp.content)  # noqa: S314
        ns = root.tag.split("}", 1)[0] + "}" if root.tag.startswith("{") else ""
        upload_id = root.findtext(f"{ns}UploadId")
        if not upload_id:
            raise TransferError(f"S3 create multipart upload on s3://{bucket}/{key}: no UploadId")
        return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> str:
        resp = self.request("PUT", bucket, key, query={"partNumber": str(number), "uploadId": upload_id}, body=body)
        return resp.headers.get("ETag", "")

    def complete_multipart(self, bucket: str, key: str, upload_id: str, etags: list[str]) -> None:
        parts = "".join(
            f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>" for i, etag in enumerate(etags, start=1)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        resp = self.request("POST", bucket, key, query={"uploadId": upload_id}, body=body)
        if b"<Error>" in resp.content:
            self._raise(resp, "POST", bucket, key)

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self.request("DELETE", bucket, key, query={"uploadId": upload_id})
        except TransferError as exc:
            log.warning("could not abort multipart upload of s3://%s/%s: %s", bucket, key, exc)
