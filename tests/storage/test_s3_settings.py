"""The S3_*, BACKUP_KEEP_*, HOME_STORAGE and PROFILE_* settings: each bad value one line naming its variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamspace.config import ConfigError, load_environment

ROOT = Path(__file__).resolve().parents[2]
BASE = {"JWT_SECRET": "s" * 40, "STREAMSPACE_DATA_DIR": "/tmp/streamspace-config-test"}


def test_no_bucket_means_no_object_store_and_the_defaults_keep_a_week_a_month_and_half_a_year() -> None:
    cfg = load_environment(BASE)
    assert cfg.s3 is None
    assert (cfg.backup_keep.daily, cfg.backup_keep.weekly, cfg.backup_keep.monthly) == (7, 4, 6)


def test_a_full_s3_group_is_read_and_normalised() -> None:
    cfg = load_environment({**BASE, "S3_BUCKET": "acme-streamspace", "S3_PREFIX": "/prod/eu/", "S3_REGION": "eu-west-1",
                         "S3_ENDPOINT_URL": "http://minio:9000/", "S3_SSE": "aws:kms",
                         "S3_KMS_KEY_ID": "arn:aws:kms:eu-west-1:111122223333:key/abc", "BACKUP_KEEP_DAILY": "3"})
    assert cfg.s3 is not None
    assert (cfg.s3.bucket, cfg.s3.prefix, cfg.s3.region, cfg.s3.endpoint_url) == (
        "acme-streamspace", "prod/eu/", "eu-west-1", "http://minio:9000")
    assert (cfg.s3.sse, cfg.s3.kms_key_id) == ("aws:kms", "arn:aws:kms:eu-west-1:111122223333:key/abc")
    assert cfg.backup_keep.daily == 3
    assert (cfg.home_storage, cfg.profile_keep, cfg.profile_url_ttl_seconds) == ("volume", 5, 600)
    homes = load_environment({**BASE, "S3_BUCKET": "abc", "HOME_STORAGE": "s3", "PROFILE_KEEP": "2",
                           "PROFILE_URL_TTL": "5m"})
    assert (homes.home_storage, homes.profile_keep, homes.profile_url_ttl_seconds) == ("s3", 2, 300)
    minimal = load_environment({**BASE, "S3_BUCKET": "abc"}).s3
    assert minimal is not None and (minimal.sse, minimal.prefix, minimal.region) == ("AES256", "", "us-east-1")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"S3_PREFIX": "x"}, "S3_BUCKET"),
        ({"S3_ENDPOINT_URL": "http://minio:9000"}, "S3_BUCKET"),
        ({"S3_BUCKET": "Upper_Case"}, "S3_BUCKET"),
        ({"S3_BUCKET": "ab"}, "S3_BUCKET"),
        ({"S3_BUCKET": "a..b"}, "S3_BUCKET"),
        ({"S3_BUCKET": "abc", "S3_PREFIX": "a/../b"}, "S3_PREFIX"),
        ({"S3_BUCKET": "abc", "S3_PREFIX": "has space"}, "S3_PREFIX"),
        ({"S3_BUCKET": "abc", "S3_REGION": "EU West"}, "S3_REGION"),
        ({"S3_BUCKET": "abc", "S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL"),
        ({"S3_BUCKET": "abc", "S3_ENDPOINT_URL": "ftp://minio"}, "S3_ENDPOINT_URL"),
        ({"S3_BUCKET": "abc", "S3_SSE": "aes"}, "S3_SSE"),
        ({"S3_BUCKET": "abc", "S3_SSE": "aws:kms"}, "S3_KMS_KEY_ID"),
        ({"S3_BUCKET": "abc", "S3_KMS_KEY_ID": "k"}, "S3_KMS_KEY_ID"),
        ({"BACKUP_KEEP_DAILY": "-1"}, "BACKUP_KEEP_DAILY"),
        ({"BACKUP_KEEP_MONTHLY": "many"}, "BACKUP_KEEP_MONTHLY"),
        ({"HOME_STORAGE": "s3"}, "HOME_STORAGE"),  # no object store configured
        ({"HOME_STORAGE": "nfs", "S3_BUCKET": "abc"}, "HOME_STORAGE"),
        ({"PROFILE_KEEP": "0"}, "PROFILE_KEEP"),
        ({"PROFILE_URL_TTL": "2h"}, "PROFILE_URL_TTL"),
    ],
)
def test_bad_s3_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment({**BASE, **env})
    assert str(caught.value).startswith(variable + ":")


def test_a_bad_s3_setting_stops_the_process_at_start_with_one_line() -> None:
    env = {**os.environ, **BASE, "S3_BUCKET": "abc", "S3_SSE": "aws:kms"}
    done = subprocess.run([sys.executable, "-m", "streamspace", "backup"], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "streamspace: configuration error: S3_KMS_KEY_ID: set it exactly when S3_SSE is aws:kms"
        " (the KMS key id or ARN)"]
