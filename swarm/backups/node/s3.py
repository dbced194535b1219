"""A small S3 client for DigitalOcean Spaces (and any S3 API): Signature Version 4, path-style
URLs, multipart upload, HEAD, streaming GET, ListObjectsV2, DELETE.

Standard library only: it runs on the nodes with the system's python3, beside
swarm_jobs.py, where no pip package can be assumed (Ubuntu 24.04 ships python3, not boto3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: bytes):
        self.status = status
        code = _xml_text(body, "Code") or body[:200].decode(errors="replace")
        super().__init__(f"S3 {method} {path}: HTTP {status} {code}")


class S3:
    def __init__(self, endpoint: str, region: str, bucket: str, access_key: str, secret_key: str, timeout: float = 300):
        url = urllib.parse.urlsplit(endpoint)
        self.secure = url.scheme == "https"
        self.host = url.netloc
        self.region = region
        self.bucket = bucket
        self._access_key = access_key
        self._secret_key = secret_key
        self.timeout = timeout

    def create_bucket(self) -> None:
        """For drills against a local S3 server; in production the program creates the bucket."""
        body = f"<CreateBucketConfiguration><LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>"
        self._request("PUT", "", body=body.encode())

    # --- objects -------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        response = self._request("PUT", key, body=data, headers={"content-type": content_type})
        return response.getheader("ETag", "").strip('"')

    def head(self, key: str) -> dict[str, str] | None:
        try:
            response = self._request("HEAD", key)
        except S3Error as error:
            if error.status == 404:
                return None
            raise
        return {name.lower(): value for name, value in response.getheaders()}

    def get(self, key: str) -> bytes:
        return self._request("GET", key).read()

    def stream(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        response = self._request("GET", key)
        while block := response.read(chunk):
            yield block

    def delete(self, key: str) -> None:
        self._request("DELETE", key)

    def list(self, prefix: str) -> list[dict[str, str]]:
        """Every object under `prefix`: {key, size, etag, modified}, in key order."""
        found, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self._request("GET", "", query=query).read())
            for item in root.iter(f"{_NS}Contents"):
                found.append({
                    "key": item.findtext(f"{_NS}Key"),
                    "size": item.findtext(f"{_NS}Size"),
                    "etag": (item.findtext(f"{_NS}ETag") or "").strip('"'),
                    "modified": item.findtext(f"{_NS}LastModified"),
                })
            if root.findtext(f"{_NS}IsTruncated") != "true":
                return sorted(found, key=lambda item: item["key"])
            token = root.findtext(f"{_NS}NextContinuationToken")

    # --- multipart -----------------------------------------------------------------------

    def create_multipart(self, key: str) -> str:
        body = self._request("POST", key, query={"uploads": ""}).read()
        upload_id = _xml_text(body, "UploadId")
        if not upload_id:
            raise RuntimeError(f"S3 refused a multipart upload of {key}")
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        response = self._request("PUT", key, body=data, query={"partNumber": str(number), "uploadId": upload_id})
        return response.getheader("ETag", "").strip('"')

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> str:
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag></Part>" for n, etag in enumerate(etags, 1))
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        reply = self._request("POST", key, body=body, query={"uploadId": upload_id}).read()
        if b"<Error>" in reply:  # S3 may report a failed completion inside a 200 response
            raise S3Error(500, "POST", key, reply)
        return (_xml_text(reply, "ETag") or "").strip('"')

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._request("DELETE", key, query={"uploadId": upload_id})

    # --- plumbing ------------------------------------------------------------------------

    def _request(self, method: str, key: str, *, body: bytes = b"", query: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        path = "/" + urllib.parse.quote(self.bucket) + ("/" + urllib.parse.quote(key, safe="/~") if key else "")
        query_text = "&".join(
            f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}" for k, v in sorted((query or {}).items())
        )
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        now = dt.datetime.now(dt.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        all_headers = {"host": self.host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date,
                       **{k.lower(): v for k, v in (headers or {}).items()}}
        if body:
            all_headers["content-length"] = str(len(body))
        signed = sorted(all_headers)
        canonical = "\n".join([
            method, path, query_text,
            "".join(f"{name}:{all_headers[name].strip()}\n" for name in signed),
            ";".join(signed), payload_hash,
        ])
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key_bytes = ("AWS4" + self._secret_key).encode()
        for part in (amz_date[:8], self.region, "s3", "aws4_request"):
            key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        all_headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        connection_type = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        connection = connection_type(self.host, timeout=self.timeout)
        connection.request(method, path + (f"?{query_text}" if query_text else ""), body=body or None, headers=all_headers)
        response = connection.getresponse()
        if response.status >= 300:
            raise S3Error(response.status, method, path, response.read())
        return response


def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag S3 gives an object uploaded in parts: md5 of the parts' md5s, '-', the count
    (also for one part)."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def _xml_text(body: bytes, tag: str) -> str | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.split("}")[-1] == tag:
            return element.text
    return None
