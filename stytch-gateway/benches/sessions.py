#!/usr/bin/env python3
"""Sessions for gateway-load.sh's `gateway-10k-sessions` run: made in the emulator, their
credentials written one per line for wrk (rotate.lua), and every one of them put in the
gateway's cache before a run.

  sessions.py create EMULATOR PROJECT_ID SECRET ORG_ID COUNT STATE
      COUNT sessions over COUNT/100 members; STATE keeps each one's opaque token.
  sessions.py tokens EMULATOR PROJECT_ID SECRET STATE OUT
      OUT: the credentials to send, one per line, alternating an opaque session token and a
      session JWT minted now (Stytch's authenticate with the session token), so every JWT
      has its full 5 minutes ahead of it.
  sessions.py prime GATEWAY TOKENS
      One GET /whoami per credential (all must answer 200): each is then cached.
"""
import base64
import http.client
import json
import sys
from urllib.parse import urlsplit


def connection(url):
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)


def post(conn, path, auth, body):
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": auth, "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        sys.exit(f"{path}: {response.status} {data[:200]!r}")
    return json.loads(data)


def basic(project, secret):
    return "Basic " + base64.b64encode(f"{project}:{secret}".encode()).decode()


def create(emulator, project, secret, org, count, state):
    auth, conn = basic(project, secret), connection(emulator)
    members = []
    for i in range(max(1, count // 100)):
        body = {"organization_id": org, "email_address": f"load{i}@sessions.test", "roles": []}
        members.append(post(conn, "/emulator/v1/members", auth, body)["member_id"])
    with open(state, "w") as out:
        for i in range(count):
            body = {"member_id": members[i % len(members)]}
            out.write(post(conn, "/emulator/v1/sessions", auth, body)["session_token"] + "\n")


def tokens(emulator, project, secret, state, out_path):
    auth, conn = basic(project, secret), connection(emulator)
    with open(state) as f:
        opaque = f.read().split()
    with open(out_path, "w") as out:
        for i, token in enumerate(opaque):
            if i % 2:
                answer = post(conn, "/v1/b2b/sessions/authenticate", auth, {"session_token": token})
                token = answer["session_jwt"]
            out.write(token + "\n")


def prime(gateway, path):
    conn = connection(gateway)
    with open(path) as f:
        credentials = f.read().split()
    for token in credentials:
        conn.request("GET", "/whoami", headers={"Authorization": "Bearer " + token})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"priming: {response.status}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "create":
        create(args[0], args[1], args[2], args[3], int(args[4]), args[5])
    elif command == "tokens":
        tokens(*args)
    elif command == "prime":
        prime(*args)
    else:
        sys.exit(f"unknown command {command}")
