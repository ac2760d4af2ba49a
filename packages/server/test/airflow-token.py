#!/usr/bin/python3
"""Makes log-server tokens and requests exactly as Airflow does, with PyJWT (which Airflow uses).

    airflow-token.py token '<spec json>'   prints one token
    airflow-token.py fetch '<spec json>'   GETs /log/<filename> the way Airflow's reader does and
                                           prints {"status", "headers", "body"} (body in base64)

Spec: {"generation": 2 | 3, "secret", "filename", "grace" (default 30), "shift" (seconds added to
the clock, default 0), "alg" (default "HS512"), "aud" (default "task-instance-logs"),
"drop" (claims to leave out)}; fetch also takes "base" (http://host:port) and "path" (the
relative path to ask for, default "filename"), and "token" to send instead of making one.
"""

import base64
import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urljoin

import jwt

AUDIENCE = "task-instance-logs"


def airflow2_token(secret, filename, grace, now, algorithm, audience, drop):
    # Airflow 2.10, airflow/utils/jwt_signer.py, JWTSigner.generate_signed_token, as called by
    # _fetch_logs_from_service in airflow/utils/log/file_task_handler.py with
    # expiration_time_in_seconds=conf.getint("webserver", "log_request_clock_grace", fallback=30),
    # audience="task-instance-logs" and extra_payload {"filename": log_relative_path}.
    jwt_dict = {
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=grace),
    }
    jwt_dict.update({"filename": filename})
    for claim in drop:
        jwt_dict.pop(claim, None)
    return jwt.encode(jwt_dict, None if algorithm == "none" else secret, algorithm=algorithm)


def airflow3_token(secret, filename, grace, now, algorithm, audience, drop):
    # Airflow 3.x, airflow-core/src/airflow/api_fastapi/auth/tokens.py, JWTGenerator.generate, as
    # built by _fetch_logs_from_service in airflow-core/src/airflow/utils/log/file_task_handler.py:
    # JWTGenerator(secret_key=get_signing_key("api", "secret_key"), algorithm="HS512",
    # private_key=None, issuer=None, valid_for=log_request_clock_grace,
    # audience="task-instance-logs").generate({"filename": log_relative_path}).
    now = int(now.timestamp())
    claims = {
        "jti": uuid.uuid4().hex,
        "iss": None,
        "aud": audience,
        "nbf": now,
        "exp": int(now + grace),
        "iat": now,
    }
    if claims["iss"] is None:
        del claims["iss"]
    if claims["aud"] is None:
        del claims["aud"]
    claims = {"filename": filename} | claims
    for claim in drop:
        claims.pop(claim, None)
    # No private key, so no "kid" header.
    headers = {"alg": algorithm}
    return jwt.encode(
        claims, None if algorithm == "none" else secret, algorithm=algorithm, headers=headers
    )


def make_token(spec):
    make = airflow3_token if spec.get("generation") == 3 else airflow2_token
    now = datetime.now(tz=timezone.utc) + timedelta(seconds=spec.get("shift", 0))
    return make(
        spec["secret"],
        spec["filename"],
        spec.get("grace", 30),
        now,
        spec.get("alg", "HS512"),
        spec.get("aud", AUDIENCE),
        spec.get("drop", []),
    )


def fetch(spec):
    token = spec.get("token") or make_token(spec)
    # _get_log_retrieval_url: urljoin(f"http://{hostname}:{port}/log/", log_relative_path).
    url = urljoin(f"{spec['base']}/log/", spec.get("path", spec["filename"]))
    # requests (Airflow's client) sends the URL through requests.utils.requote_uri.
    url = quote(url, safe="!#$%&'()*+,/:;=?@[]~")
    request = urllib.request.Request(
        url,
        # requests' default headers, plus the one Airflow adds.
        headers={
            "User-Agent": "python-requests/2.32.3",
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Authorization": token,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
    return {
        "status": status,
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": base64.b64encode(body).decode("ascii"),
    }


def main():
    command, spec = sys.argv[1], json.loads(sys.argv[2])
    if command == "token":
        print(make_token(spec))
    elif command == "fetch":
        print(json.dumps(fetch(spec)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
