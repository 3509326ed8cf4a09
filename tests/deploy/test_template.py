"""The packaged template (`make package`): every resource the stage needs, least privilege, and cfn-lint clean."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import settings_from
from chalicelib.storage.retention import LOG_TABLES
from chalicelib.storage.tables import MODELS
from deploy.template import GATEWAY_RESPONSES, merge_template, policy, stage_environment, table_id

STAGE = "dev"
# What IAM actions each kind of table may have; anything beyond is a finding.
LOG_TABLE_ACTIONS = {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"}


@pytest.fixture(scope="module")
def template(packaged: Path) -> Path:
    return packaged


@pytest.fixture(scope="module")
def resources(template: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(template.read_text())["Resources"]
    return loaded


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r.get("Type") == kind}


def functions(resources: dict[str, Any]) -> dict[str, Any]:
    return of_type(resources, "AWS::Serverless::Function")


ENV = stage_environment(STAGE)
SETTINGS = settings_from(ENV)


# -- what the stage needs ----------------------------------------------------------------------------


def test_cfn_lint_passes(template: Path) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(template)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schedule_and_the_queue_drive_the_refresh(resources: dict[str, Any]) -> None:
    fns = functions(resources)
    [tick] = [f for f in fns.values() if f["Properties"].get("Events", {}).get("RefreshTickEvent")]
    assert tick["Properties"]["Events"]["RefreshTickEvent"]["Properties"]["Schedule"] == "cron(0/15 * * * ? *)"
    worker = fns["RefreshWorker"]["Properties"]
    [source] = worker["Events"].values()
    assert source["Type"] == "SQS" and source["Properties"]["Queue"] == {"Fn::Sub": "${RefreshQueue.Arn}"}
    queue = resources["RefreshQueue"]["Properties"]
    assert queue["QueueName"] == SETTINGS.refresh_queue_name == ENV["ROTASIGN_REFRESH_QUEUE"]
    # A message must stay invisible for longer than the worker may run, or it is handled twice at once.
    assert queue["VisibilityTimeout"] > worker["Timeout"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": SETTINGS.refresh_max_receives}
    assert resources["RefreshDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"


def test_every_model_is_a_table_with_its_keys_indexes_and_ttl(resources: dict[str, Any]) -> None:
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert set(tables) == {table_id(t) for t in MODELS}  # a table added to the models is packaged
    for table, model in MODELS.items():
        properties = tables[table_id(table)]["Properties"]
        schema: dict[str, Any] = dict(model._get_schema())
        assert properties["TableName"] == SETTINGS.table_name(table)
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["KeySchema"][0]["KeyType"] == "HASH"
        assert {(k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]} == {
            (k["AttributeName"], k["KeyType"]) for k in schema["key_schema"]}
        packaged = {i["IndexName"]: i for i in properties.get("GlobalSecondaryIndexes", [])}
        assert set(packaged) == {i["index_name"] for i in schema["global_secondary_indexes"]}
        for index in schema["global_secondary_indexes"]:
            assert packaged[index["index_name"]]["Projection"] == index["projection"]
        assert tables[table_id(table)]["DeletionPolicy"] == "Retain"
    for table in LOG_TABLES:
        assert tables[table_id(table)]["Properties"]["TimeToLiveSpecification"] == {
            "AttributeName": "expires", "Enabled": True}
    assert tables[table_id("keypairs")]["Properties"]["GlobalSecondaryIndexes"][0]["IndexName"] == "due"


def test_the_key_the_token_secret_and_the_alarms(resources: dict[str, Any]) -> None:
    assert resources["EnvelopeKey"]["Type"] == "AWS::KMS::Key"
    assert resources["EnvelopeKey"]["Properties"]["EnableKeyRotation"] is True
    assert resources["EnvelopeKeyAlias"]["Properties"] == {"AliasName": ENV["ROTASIGN_KMS_KEY_ID"],
                                                          "TargetKeyId": {"Ref": "EnvelopeKey"}}
    secret = resources["TokenKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["Name"] == ENV["ROTASIGN_TOKEN_KEY_SECRET"]
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    for fn in functions(resources).values():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert variables["ROTASIGN_TOKEN_KEY_SECRET"] == ENV["ROTASIGN_TOKEN_KEY_SECRET"]
        assert "ROTASIGN_TOKEN_KEY" not in variables
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    watched = {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms.values()}
    assert watched == {("rotasign", "refresh_lag_seconds"), ("rotasign", "refresh_failures"),
                       ("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if alarm["Properties"]["Namespace"] == "rotasign":
            assert alarm["Properties"]["Dimensions"] == [{"Name": "stage", "Value": STAGE}]


def test_a_request_never_outlives_the_retirement_grace(resources: dict[str, Any]) -> None:
    """The API function's timeout is within ROTASIGN_MAX_REQUEST_SECONDS, which the retirement grace counts on."""
    assert functions(resources)["APIHandler"]["Properties"]["Timeout"] <= SETTINGS.max_request_seconds


def render(body: str) -> Any:
    """A gateway response body as API Gateway fills it in."""
    filled = body.replace("$context.error.messageString", json.dumps("Missing Authentication Token"))
    return json.loads(filled.replace("$context.requestId", "6b1e2c3d-0000-4000-8000-000000000000"))


def test_api_gateway_errors_have_the_api_error_body(resources: dict[str, Any]) -> None:
    responses = resources["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert set(responses) == set(GATEWAY_RESPONSES)
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == 404  # an unknown path
    assert responses["THROTTLED"]["statusCode"] == 429
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    for kind, response in responses.items():
        body = render(response["responseTemplates"]["application/json"])
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, kind
        assert re.fullmatch(r"[a-z_]+", body["error"]["code"]) and body["error"]["message"]
        assert response["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/json'"


# -- least privilege ---------------------------------------------------------------------------------


def names_in(resource: Any) -> set[str]:
    """The template resources a policy Resource entry names (Ref, GetAtt, `${X.Arn}` in Sub)."""
    if isinstance(resource, dict):
        if "Ref" in resource:
            return {resource["Ref"]}
        if "Fn::GetAtt" in resource:
            return {resource["Fn::GetAtt"][0]}
        if "Fn::Sub" in resource:
            text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
            return {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9.]+)\}", text) if not m.startswith("AWS")}
    return set()


def findings(resources: dict[str, Any]) -> list[str]:
    """Everything that breaks least privilege in the template's roles (an empty list when none does)."""
    found = []
    roles = of_type(resources, "AWS::IAM::Role")
    log_ids = {table_id(t) for t in LOG_TABLES}
    covered: dict[str, set[str]] = {}
    for fn_id, fn in functions(resources).items():
        role = fn["Properties"]["Role"]
        if not (isinstance(role, dict) and role.get("Fn::GetAtt", [None])[0] in roles):
            found.append(f"{fn_id}: its role is not one of this template's roles")
    for role_id, role in roles.items():
        for policy_doc in role["Properties"].get("Policies", []):
            for statement in policy_doc["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                for action in actions:
                    if "*" in action:
                        found.append(f"{role_id}: wildcard action {action}")
                for target in targets:
                    named = names_in(target)
                    text = json.dumps(target)
                    if not named and "secret:" not in text:
                        found.append(f"{role_id}: resource {text} is not a resource of this template")
                    if "*" in text:
                        found.append(f"{role_id}: wildcard resource {text}")
                    for name in named:
                        if name not in resources:
                            found.append(f"{role_id}: names {name}, which the template does not create")
                        covered.setdefault(role_id, set()).add(name)
                        if name in log_ids:
                            extra = set(actions) - LOG_TABLE_ACTIONS
                            if extra:
                                found.append(f"{role_id}: {sorted(extra)} on the append-only {name}")
    needed = set(of_type(resources, "AWS::DynamoDB::Table")) | {"RefreshQueue", "EnvelopeKey", "TokenKeySecret"}
    for role_id in roles:
        missing = needed - covered.get(role_id, set())
        if missing:
            found.append(f"{role_id}: no access to {sorted(missing)}")
    return found


def test_every_role_holds_least_privilege(resources: dict[str, Any]) -> None:
    assert findings(resources) == []


def first_policy(resources: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = resources["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]
    return statements


@pytest.mark.parametrize("break_it", [
    lambda s: s[0]["Action"].append("dynamodb:*"),
    lambda s: s[2]["Resource"].append("*"),
    # (the keypairs table: the accounts table is also named by the checkpointer's scan statement)
    lambda s: s[0].update(Resource=[r for r in s[0]["Resource"] if table_id("keypairs") not in json.dumps(r)]),
    lambda s: s[1]["Action"].append("dynamodb:UpdateItem"),
    lambda s: s[1]["Action"].append("dynamodb:DeleteItem"),
    lambda s: s[3]["Resource"].append("arn:aws:sqs:us-east-1:123456789012:someone-elses-queue"),
])
def test_the_checker_finds_each_kind_of_excess(resources: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(resources)
    statements = first_policy(broken)
    assert [s["Sid"] for s in statements[:4]] == ["StateTables", "AppendOnlyLogs", "EnvelopeKey", "RefreshQueue"]
    break_it(statements)
    assert findings(broken) != []


def test_the_prod_policy_names_only_prod_resources() -> None:
    """Stages share nothing: prod's generated template names prod's tables, queue, alias and secret."""
    env = stage_environment("prod")
    prod = settings_from(env)
    merged = merge_template("prod")["Resources"]
    assert {r["Properties"]["TableName"] for r in of_type(merged, "AWS::DynamoDB::Table").values()} == {
        prod.table_name(t) for t in MODELS}
    assert all(name.startswith("rotasign-prod-") for name in (prod.table_prefix, prod.refresh_queue_name))
    assert merged["EnvelopeKeyAlias"]["Properties"]["AliasName"] == "alias/rotasign-prod"
    assert merged["TokenKeySecret"]["Properties"]["Name"] == env["ROTASIGN_TOKEN_KEY_SECRET"] != ENV[
        "ROTASIGN_TOKEN_KEY_SECRET"]
    from deploy.template import app_functions

    statements = policy(prod, app_functions())["Statement"]
    assert not any("*" in action for s in statements for action in s["Action"])


def test_only_the_scheduled_tick_may_write_the_transparency_trees(resources: dict[str, Any]) -> None:
    """In the packaged template: the tick's role (the checkpointer) writes the trees; no other role does."""
    tree = table_id("transparency")
    writers = set()
    for role_id, role in of_type(resources, "AWS::IAM::Role").items():
        for document in role["Properties"].get("Policies", []):
            for statement in document["PolicyDocument"]["Statement"]:
                named = {n for r in statement["Resource"] for n in names_in(r)}
                if tree in named and {"dynamodb:PutItem", "dynamodb:BatchWriteItem"} & set(statement["Action"]):
                    writers.add(role_id)
    assert writers == {"RefreshTickRole"}
