"""An object's version for cache keys: its content checksum, not when or how often it was
uploaded (S3 versioned buckets and GCS give every upload a new version id)."""

from __future__ import annotations

from loopline.runtime.hashing import _object_fields


def test_same_bytes_uploaded_again_keep_their_version() -> None:
    s3_first = {"ETag": '"9b2cf"', "VersionId": "v1", "LastModified": "t1", "size": 10}
    s3_again = {"ETag": '"9b2cf"', "VersionId": "v2", "LastModified": "t2", "size": 10}
    assert _object_fields(s3_first) == _object_fields(s3_again)
    gcs_first = {"md5Hash": "aGVsbG8=", "crc32c": "x", "generation": "1", "size": 10}
    gcs_again = {"md5Hash": "aGVsbG8=", "crc32c": "x", "generation": "2", "size": 10}
    assert _object_fields(gcs_first) == _object_fields(gcs_again)
    assert _object_fields({**s3_first, "ETag": '"other"'}) != _object_fields(s3_first)


def test_without_a_checksum_the_version_or_time_decides() -> None:
    assert _object_fields({"VersionId": "v1", "size": 3}) != \
        _object_fields({"VersionId": "v2", "size": 3})
    assert _object_fields({"mtime": 1.0, "size": 3}) != _object_fields({"mtime": 2.0, "size": 3})
