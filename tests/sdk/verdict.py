#!/usr/bin/env python3
"""Verdicts of Stytch's official Python SDK (`stytch`, pinned in setup.sh), run locally.

Usage:
    STYTCH_SECRET=... verdict.py --base-url http://127.0.0.1:PORT/ --project-id PROJECT_ID < cases.json

The secret may also be given as --secret (it then shows in `ps`). The base URL is given to
the SDK as its `environment`: `stytch/core/client_base.py` uses any value other than
"test"/"live" as the base URL as is (its `custom_base_url` would insist on https). The SDK
then fetches everything it needs from there: the JWKS (`/v1/b2b/sessions/jwks/{project_id}`),
the RBAC policy (`/v1/b2b/rbac/policy`) and each organization's policy
(`/v1/b2b/rbac/organizations/{id}`), through its own policy cache (one client per run, so
each is fetched once per run). No other network.

Input (stdin): a JSON list of cases, each one of
    {"kind": "session", "session_jwt": "...",
     "organization_id": "...", "resource_id": "...", "action": "..."}
        -> sessions.authenticate_jwt_local(session_jwt, authorization_check=...)
    {"kind": "m2m", "access_token": "...", "required_scopes": ["read:documents", ...]}
        -> m2m.authenticate_token(access_token, required_scopes=...)

Output (stdout): one JSON object per line, per case, in input order:
    {"index": 0, "verdict": "allowed", "detail": "..."}
with verdict one of
    "allowed"            the SDK accepted the JWT / token and the check passed
    "tenancy_mismatch"   session: TenancyError (the JWT's organization is not the check's)
    "permission_denied"  session: RBACPermissionError (no role grants the action)
    "scope_denied"       m2m: a valid token lacking a required scope
    "invalid_token"      the JWT / token did not verify locally (signature, exp, aud, iss),
                         or is not a JWT at all (PyJWT's errors; detail names which)
    "error:<Name>"       any other exception, by class name (e.g. "error:ValueError")
Exit status: 0 when every case got a verdict; 2 for bad arguments or input.
"""

import argparse
import json
import os
import sys
import warnings


def session_verdict(client, case):
    from stytch.b2b.models.sessions import AuthorizationCheck
    from stytch.shared.rbac_local import RBACPermissionError, TenancyError

    check = AuthorizationCheck(
        organization_id=case["organization_id"],
        resource_id=case["resource_id"],
        action=case["action"],
    )
    try:
        session = client.sessions.authenticate_jwt_local(
            session_jwt=case["session_jwt"], authorization_check=check
        )
    except TenancyError as e:
        return "tenancy_mismatch", str(e)
    except RBACPermissionError as e:
        return "permission_denied", str(e)
    if session is None:
        return "invalid_token", "the JWT did not verify locally"
    return "allowed", "roles " + " ".join(session.roles)


def m2m_verdict(client, case):
    from stytch.shared import m2m_authorization

    seen = {}

    def check(params):
        # The SDK's own rule, recorded so that a scope denial is told from a bad token
        # (authenticate_token answers None for both).
        seen["authorized"] = m2m_authorization.perform_authorization_check(params)
        return seen["authorized"]

    claims = client.m2m.authenticate_token(
        access_token=case["access_token"],
        required_scopes=case.get("required_scopes") or [],
        scope_authorization_func=check,
    )
    if claims is not None:
        return "allowed", "scopes " + " ".join(claims.scopes)
    if seen.get("authorized") is False:
        return "scope_denied", "missing one of " + " ".join(case.get("required_scopes") or [])
    return "invalid_token", "the token did not verify locally"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the emulator's base URL")
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--secret", help="default: $STYTCH_SECRET")
    args = parser.parse_args()
    secret = args.secret or os.environ.get("STYTCH_SECRET")
    if not secret:
        parser.error("give --secret or STYTCH_SECRET")
    try:
        cases = json.load(sys.stdin)
        assert isinstance(cases, list)
    except (ValueError, AssertionError):
        parser.error("stdin must be a JSON list of cases")

    import jwt
    import stytch

    base_url = args.base_url if args.base_url.endswith("/") else args.base_url + "/"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = stytch.B2BClient(
            project_id=args.project_id, secret=secret, environment=base_url
        )
    for index, case in enumerate(cases):
        try:
            if case.get("kind") == "session":
                verdict, detail = session_verdict(client, case)
            elif case.get("kind") == "m2m":
                verdict, detail = m2m_verdict(client, case)
            else:
                verdict, detail = "error:UnknownKind", repr(case.get("kind"))
        except jwt.PyJWTError as e:
            # Raised before the SDK's own catch (e.g. PyJWKClient on a malformed token).
            verdict, detail = "invalid_token", type(e).__name__ + ": " + str(e)
        except Exception as e:  # noqa: BLE001 - every other outcome is reported by name
            verdict, detail = "error:" + type(e).__name__, str(e)
        print(json.dumps({"index": index, "verdict": verdict, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
