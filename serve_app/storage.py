"""Writing images to S3 and handing back presigned URLs (``delivery: s3`` and oversized answers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredImage:
    s3_uri: str
    url: str


class S3ImageStore:
    def __init__(self, bucket: str, prefix: str, expiry_s: int, endpoint_url: str | None = None, client=None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self.expiry_s = expiry_s
        self._client = client or boto3.client("s3", endpoint_url=endpoint_url or None)

    async def put(
        self, request_id: str, data: bytes, media_type: str, extension: str, model: str | None = None
    ) -> StoredImage:
        # One folder per served model under the prefix: which model made an image is in its key.
        key = f"{self.prefix}{model}/{request_id}.{extension}" if model else f"{self.prefix}{request_id}.{extension}"
        # boto3 is blocking: run it off the event loop.
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=media_type
        )
        url = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.expiry_s,
        )
        return StoredImage(s3_uri=f"s3://{self.bucket}/{key}", url=url)
