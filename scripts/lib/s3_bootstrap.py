"""Prepare a freshly started moto server for the test bed, then prove it enforces signatures.

Usage: s3_bootstrap.py ENDPOINT REGION
Run with the interpreter of .state/venv (it needs boto3). The server must have been started
with INITIAL_NO_AUTH_ACTION_COUNT=3: the three IAM calls below are the only requests it
accepts without a valid signature. Afterwards every request must be signed with the key
created here, which is printed as shell KEY=value lines on stdout.
"""

import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

USER = "switchyard"
PROBE_BUCKET = "switchyard-testbed-probe"


def fail(msg: str) -> None:
    print(f"s3_bootstrap: {msg}", file=sys.stderr)
    sys.exit(1)


def client(service: str, endpoint: str, region: str, key: str, secret: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def expect_403(what: str, call) -> None:
    try:
        call()
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403:
            return
        fail(f"{what}: expected 403, got {status} ({e})")
    except urllib.error.HTTPError as e:
        if e.code == 403:
            return
        fail(f"{what}: expected 403, got {e.code}")
    fail(f"{what}: expected 403, but the request was accepted (signatures are not enforced)")


def expect_refused_unsigned(endpoint: str) -> None:
    """A request with no Authorization header must be refused. Real S3 answers 403; moto
    5.x answers 500 (KeyError on the missing header), which still proves enforcement."""
    try:
        urllib.request.urlopen(f"{endpoint}/", timeout=10).read()
    except urllib.error.HTTPError as e:
        if e.code in (403, 500):
            return
        fail(f"unsigned GET /: expected 403 or 500, got {e.code}")
    fail("unsigned GET /: accepted (signatures are not enforced)")


def main() -> None:
    if len(sys.argv) != 3:
        fail("usage: s3_bootstrap.py ENDPOINT REGION")
    endpoint, region = sys.argv[1], sys.argv[2]

    # The three free actions: any credentials are accepted for them.
    iam = client("iam", endpoint, region, "bootstrap", "bootstrap")
    iam.create_user(UserName=USER)
    iam.put_user_policy(
        UserName=USER,
        PolicyName="allow-all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    created = iam.create_access_key(UserName=USER)["AccessKey"]
    key, secret = created["AccessKeyId"], created["SecretAccessKey"]

    # From here on, signatures are checked.
    expect_refused_unsigned(endpoint)
    bad = client("s3", endpoint, region, key, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    expect_403("request signed with a wrong secret", bad.list_buckets)
    stranger = client("s3", endpoint, region, "AKIAIOSFODNN7EXAMPLE", secret)
    expect_403("request signed with an unknown key", stranger.list_buckets)

    s3 = client("s3", endpoint, region, key, secret)
    s3.create_bucket(Bucket=PROBE_BUCKET)
    s3.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"switchyard",
                  ContentType="application/octet-stream")
    body = s3.get_object(Bucket=PROBE_BUCKET, Key="probe")["Body"].read()
    if body != b"switchyard":
        fail(f"signed PUT/GET round trip returned {body!r}")
    s3.delete_object(Bucket=PROBE_BUCKET, Key="probe")
    s3.delete_bucket(Bucket=PROBE_BUCKET)

    print(f"SWITCHYARD_S3_ACCESS_KEY_ID={key}")
    print(f"SWITCHYARD_S3_SECRET_ACCESS_KEY={secret}")


if __name__ == "__main__":
    main()
