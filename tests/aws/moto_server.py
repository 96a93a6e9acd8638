"""moto in server mode, set up for credproxy's SigV4 tests, with SigV4 checked on every request.

Starts on 127.0.0.1 and a free port; creates (while moto still lets requests in unsigned)
an IAM user with an access key and a role, both allowed everything, and an S3 bucket; then
turns on moto's request authentication, prints one JSON line (endpoint, keys, role ARN,
bucket) and serves until stdin closes. From then on moto recomputes the signature of every
request (botocore's SigV4Auth / S3SigV4Auth) and refuses a wrong one with 403.
"""

import json
import sys

import boto3
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
TRUST_WEB_IDENTITY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/credproxy.test"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
)


def take_web_identity_unsigned() -> None:
    """AWS takes AssumeRoleWithWebIdentity unsigned (the web identity token is the
    credential); moto, once it checks requests, wants every one signed. Let that one in."""
    check = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        if self._get_action() == "AssumeRoleWithWebIdentity":
            return None
        return check(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def main() -> None:
    take_web_identity_unsigned()
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIASETUPSETUPSETUP0",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="credproxy-test")
    iam.put_user_policy(UserName="credproxy-test", PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="credproxy-test")["AccessKey"]
    role = iam.create_role(RoleName="credproxy-role", AssumeRolePolicyDocument=TRUST_WEB_IDENTITY)
    iam.put_role_policy(RoleName="credproxy-role", PolicyName="all", PolicyDocument=ALLOW_ALL)
    boto3.client("s3", **setup).create_bucket(Bucket="credproxy-bucket")
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
                "role_arn": role["Role"]["Arn"],
                "bucket": "credproxy-bucket",
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
