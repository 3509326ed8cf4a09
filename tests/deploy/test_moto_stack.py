"""The packaged template's DynamoDB, SQS and KMS resources deployed by CloudFormation (moto's server), then used.

A moto server runs in its own process; CloudFormation creates the tables (with their indexes), the
refresh queue and its dead-letter queue, the KMS key and its alias from the packaged template; the
app's functions then run in another process with the stage's environment against exactly what the stack
created: bootstrap, sign, the tick and the SQS worker refresh the keypair, sign again.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chalicelib.keys.algorithms import SIG_ALGS, verify_signature
from deploy.template import stage_environment

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::KMS::Key", "AWS::KMS::Alias")
SERVER = """
import sys, time
from localdev.emulator import start_server
start_server("127.0.0.1", int(sys.argv[1]))
print("ready", flush=True)
time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROTASIGN_"))}
    return {**env, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """A moto server in its own process (its state is nobody else's)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name="us-east-1",
                                          aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def stack(emulator: str, packaged: Path) -> dict[str, Any]:
    """CloudFormation creates the template's tables, queues and KMS key; returns those resources."""
    resources = json.loads(packaged.read_text())["Resources"]
    chosen = {name: r for name, r in resources.items() if r["Type"] in DEPLOYED}
    cfn = client("cloudformation", emulator)
    cfn.create_stack(StackName="rotasign-dev", TemplateBody=json.dumps(
        {"AWSTemplateFormatVersion": "2010-09-09", "Resources": chosen}))
    deadline = time.monotonic() + 120
    while (status := cfn.describe_stacks(StackName="rotasign-dev")["Stacks"][0]["StackStatus"]) != "CREATE_COMPLETE":
        assert status.endswith("IN_PROGRESS") and time.monotonic() < deadline, status
        time.sleep(0.5)
    # moto's CloudFormation has no Secrets Manager resource: the secret is made as the template describes it.
    secret = resources["TokenKeySecret"]["Properties"]
    password = client("secretsmanager", emulator).get_random_password(PasswordLength=64, ExcludePunctuation=True)
    client("secretsmanager", emulator).create_secret(Name=secret["Name"], SecretString=password["RandomPassword"])
    return chosen


def test_the_stack_has_what_the_template_describes(emulator: str, stack: dict[str, Any]) -> None:
    env = stage_environment("dev")
    dynamodb = client("dynamodb", emulator)
    names = {r["Properties"]["TableName"] for r in stack.values() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(dynamodb.list_tables()["TableNames"]) == names
    keypairs = dynamodb.describe_table(TableName=f"{env['ROTASIGN_TABLE_PREFIX']}keypairs")["Table"]
    assert [i["IndexName"] for i in keypairs["GlobalSecondaryIndexes"]] == ["due"]
    sqs = client("sqs", emulator)
    url = sqs.get_queue_url(QueueName=env["ROTASIGN_REFRESH_QUEUE"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{env['ROTASIGN_REFRESH_QUEUE']}-dlq")
    assert int(redrive["maxReceiveCount"]) == 5 and int(attributes["VisibilityTimeout"]) > 120
    aliases = {a["AliasName"] for a in client("kms", emulator).list_aliases()["Aliases"]}
    assert env["ROTASIGN_KMS_KEY_ID"] in aliases


def verified(response: dict[str, Any], digest: str, tmp: Path) -> None:
    """The signature verifies with `cryptography` and with openssl against the certificate returned with it."""
    cert = x509.load_pem_x509_certificate(response["certificate"]["pem"].encode())
    signature, raw_digest = base64.b64decode(response["signature"]), base64.b64decode(digest)
    verify_signature(cert.public_key(), SIG_ALGS[response["sig_alg"]], signature, raw_digest)
    (tmp / "cert.pem").write_text(response["certificate"]["pem"])
    (tmp / "digest").write_bytes(raw_digest)
    (tmp / "sig").write_bytes(signature)
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-certin", "-inkey", tmp / "cert.pem", "-in",
                           tmp / "digest", "-sigfile", tmp / "sig"], capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr


def test_the_worker_and_a_signature_run_on_the_stack(emulator: str, stack: dict[str, Any], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.deploy.stack_driver"], cwd=ROOT, env=server_env(emulator),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    created, before, after = out["created"], out["before"], out["after"]
    verified(before, out["digest"], tmp_path)
    verified(after, out["digest"], tmp_path)
    assert (before["generation"], after["generation"]) == (1, 2)
    assert before["key_id"] == created["key_id"] != after["key_id"]
    assert out["messages"] >= 1 + out["tick"]["slices"]  # the slices and the refresh they queued
    [refresh] = out["refreshes"]
    assert (refresh["outcome"], refresh["actor"]) == ("success", "system:scheduler")
    assert len(set(out["pages"])) == 2  # a next token opened by the same deployment's key
