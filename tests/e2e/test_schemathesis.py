"""schemathesis against the OpenAPI document a live server serves: generated
requests (examples, boundary values, random and schema-violating data) for
every operation, checking that no answer is a server error, that every
status, content type, header and body matches the document, and that
schema-violating requests are refused.

Runs (each bounded to well under a minute on two cores):
- as the owner, with every operation but the few that end the owner's own
  session or rights (log out, sign out a session, change an account, replace
  the policy): those would turn the rest of the run into 401 answers;
- those few on a throwaway box of their own, where losing the session midway
  only leaves conforming 401 answers;
- without any credentials, every operation.
"""

import pathlib
import subprocess
import sys

import requests
import urllib3

from conftest import OWNER, PASSWORD

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ST = str(pathlib.Path(sys.executable).with_name("st"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
])
# Operations that end the caller's own session or change its rights.
SELF_ENDING = ["logout", "end_my_session", "update_user", "replace_policy"]


def owner_token(box):
    r = requests.post(f"https://127.0.0.1:{box.https_port}/api/v1/auth/login",
                      json={"username": OWNER, "password": PASSWORD}, verify=False, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def schemathesis(box, *args, examples):
    # No automatic sign-up: accounts are made by administrators only, and
    # the credentials (or their absence) are what each run is about.
    config = box.tmp / "schemathesis.toml"
    config.write_text("[auth]\nauto-signup = false\n")
    cmd = [ST, "--config-file", str(config), "run", f"https://127.0.0.1:{box.https_port}/api/v1/openapi.json",
           "--tls-verify", "false", "--checks", CHECKS, "--max-examples", str(examples),
           "--phases", "examples,coverage,fuzzing", "--workers", "2", "--warnings", "off",
           "--request-timeout", "30", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=box.tmp)
    summary = r.stdout[-8000:]
    assert r.returncode == 0, f"schemathesis found problems:\n{summary}\nserver log:\n{box.log_text()[-3000:]}"
    assert " passed" in summary and "generated" in summary, summary
    assert "Internal Server Error" not in box.log_text()
    return summary


def test_every_operation_as_the_owner(box):
    exclude = [a for op in SELF_ENDING for a in ("--exclude-operation-id", op)]
    schemathesis(box, "--header", f"Authorization: Bearer {owner_token(box)}", *exclude, examples=25)
    # The owner's session survived the run.
    assert requests.get(f"https://127.0.0.1:{box.https_port}/api/v1/health", verify=False).status_code == 200


def test_the_self_ending_operations_on_a_throwaway_box(box):
    include = [a for op in SELF_ENDING for a in ("--include-operation-id", op)]
    schemathesis(box, "--header", f"Authorization: Bearer {owner_token(box)}", *include, examples=40)


def test_every_operation_without_credentials(box):
    schemathesis(box, examples=10)
