"""Helpers of the S3 tests: the moto server's connection, a bucket to look at, a task context."""

from __future__ import annotations

import json
import uuid
from typing import Any

#: Environment every S3 client here needs: dummy credentials, no AWS lookups, no proxies.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def aws_connection(endpoint: str) -> str:
    """The ``aws_default`` connection in Airflow's JSON form, pointing at the moto server."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


class S3:
    """A fresh bucket on the moto server and a boto3 client to look at it."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.bucket = f"photos-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def objects(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Key -> ``{size, etag, modified}`` of every object under ``prefix`` (bounded pages)."""
        found: dict[str, dict[str, Any]] = {}
        token: str | None = None
        for _ in range(100):
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            for item in page.get("Contents", []):
                found[item["Key"]] = {
                    "size": item["Size"],
                    "etag": item["ETag"],
                    "modified": item["LastModified"],
                }
            token = page.get("NextContinuationToken")
            if not token:
                break
        return found

    def pending_multipart_uploads(self) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"
