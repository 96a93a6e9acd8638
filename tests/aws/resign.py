"""Recomputes the SigV4 signature of a request credproxy sent, with botocore.

Reads one JSON object on stdin: method, url, headers (name → value, as received), body
(base64), the keys, region and service. Prints the Authorization header botocore computes
for the same request, time and signed headers. Exits 1 if X-Amz-Content-SHA256 is not the
SHA-256 of the body (botocore itself trusts that header, so it is checked here).
"""

import base64
import hashlib
import json
import sys

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> None:
    sent = json.load(sys.stdin)
    body = base64.b64decode(sent["body"])
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    authorization = headers["authorization"]
    signed = authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";")

    declared = headers.get("x-amz-content-sha256")
    if declared != "UNSIGNED-PAYLOAD" and declared != hashlib.sha256(body).hexdigest():
        print(f"x-amz-content-sha256 {declared} is not the body's hash", file=sys.stderr)
        sys.exit(1)

    request = AWSRequest(
        method=sent["method"],
        url=sent["url"],
        data=body,
        headers={name: headers[name] for name in signed},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    credentials = Credentials(
        sent["access_key_id"], sent["secret_access_key"], sent.get("session_token")
    )
    signer_class = S3SigV4Auth if sent["service"] == "s3" else SigV4Auth
    signer = signer_class(credentials, sent["service"], sent["region"])
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    signature = signer.signature(string_to_sign, request)
    scope = f"{headers['x-amz-date'][:8]}/{sent['region']}/{sent['service']}/aws4_request"
    print(
        f"AWS4-HMAC-SHA256 Credential={sent['access_key_id']}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )


if __name__ == "__main__":
    main()
