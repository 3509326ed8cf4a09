"""The stage's infrastructure, generated from the code: the merge template and the IAM policy `chalice package` takes.

One source of truth for each part:
- the tables, their keys, indexes and TTL: the PynamoDB models (`chalicelib.storage.tables.MODELS`), so a
  table or an index added there is in the next package with no edit here;
- names (tables, queue, KMS alias, secrets) and limits: the stage's environment in `.chalice/config.json`,
  read through the same `Settings` the service reads at run time;
- the Lambda functions and the queue each one consumes: the Chalice app itself.

The policy grants each table only what the code does to it: state tables read and write; the
append-only tables (`chalicelib.storage.retention.LOG_TABLES`) are written with `PutItem` alone, whose
every use in the code carries an `attribute_not_exists` condition (IAM cannot demand a condition). Every
resource is named: a table, an index, the queue, the key, a secret, a log group; no action has a `*`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.settings import Settings, settings_from

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"

STATE_ACTIONS = (
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
    "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable",
)
# Append-only: no UpdateItem, DeleteItem or BatchWriteItem, so no role can change or remove an entry.
LOG_ACTIONS = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable")
# The transparency trees: every function reads them (proofs); only the checkpointer's role writes them, so
# no request path can rewrite a tree. Full tiles and leaf blocks are written in batches (their content is final).
TREE_TABLES = ("transparency",)
TREE_READS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable")
TREE_WRITES = ("dynamodb:PutItem", "dynamodb:BatchWriteItem")
# The function whose role is the checkpointer's (the scheduled tick), and the policy file it gets.
CHECKPOINTER = "refresh_tick"
CHECKPOINTER_POLICY = "policy-checkpointer.json"
# The checkpointer walks every account: a scan of the small accounts table, and of nothing else.
SCANNED = ("accounts",)
QUEUE_ACTIONS = (
    "sqs:SendMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
)
KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
VISIBILITY_PER_TIMEOUT = 6  # SQS visibility timeout per worker timeout, as Lambda's SQS integration advises
LOG_RETENTION_DAYS = 90  # Lambda's own logs (the audit and signature logs are DynamoDB tables)
API_HANDLER = "api_handler"

# API Gateway's own answers (before the app runs) in the API's error shape: response type → (status, code,
# message). A None status keeps the one API Gateway chose; a None message passes API Gateway's own.
GATEWAY_RESPONSES: dict[str, tuple[int | None, str, str | None]] = {
    # REST APIs answer a path (or a method of a path) that no route has with this type.
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "No route matches this method and path."),
    "RESOURCE_NOT_FOUND": (404, "not_found", "No route matches this method and path."),
    "THROTTLED": (429, "throttled", "Too many requests; retry later."),
    "QUOTA_EXCEEDED": (429, "throttled", "Too many requests; retry later."),
    "REQUEST_TOO_LARGE": (413, "payload_too_large", "The request body is too large."),
    "UNSUPPORTED_MEDIA_TYPE": (415, "unsupported_media_type", "This content type is not accepted here."),
    "BAD_REQUEST_BODY": (400, "validation_error", None),
    "BAD_REQUEST_PARAMETERS": (400, "validation_error", None),
    "ACCESS_DENIED": (403, "forbidden", "Access denied."),
    "INTEGRATION_FAILURE": (503, "service_unavailable", "The service is unavailable; retry later."),
    "INTEGRATION_TIMEOUT": (504, "timeout", "The request took too long; retry later."),
    "DEFAULT_4XX": (None, "bad_request", None),
    "DEFAULT_5XX": (None, "internal_error", None),
}


@dataclass(frozen=True)
class Function:
    """A Lambda function of the packaged app: its Chalice name and its template's logical id."""

    name: str
    logical_id: str
    sqs_queue: str | None = None  # the queue name its `on_sqs_message` names


def logical_id(name: str) -> str:
    """`audit_log` → `AuditLog` (CloudFormation logical ids are alphanumeric)."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def table_id(table: str) -> str:
    return f"{logical_id(table)}Table"


def stage_environment(stage: str, config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment variables a stage's functions get: the config's own, then the stage's."""
    config = config if config is not None else json.loads(CONFIG.read_text())
    if stage not in config.get("stages", {}):
        raise SystemExit(f"Stage {stage!r} is not in .chalice/config.json.")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def function_settings(stage: str, name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A function's Chalice settings (timeout, memory): top level, then the stage, then the function in each."""
    config = config if config is not None else json.loads(CONFIG.read_text())
    stage_config = config["stages"][stage]
    merged: dict[str, Any] = {"lambda_timeout": 60, "lambda_memory_size": 128}
    for layer in (config, stage_config):
        merged |= {k: v for k, v in layer.items() if k in ("lambda_timeout", "lambda_memory_size")}
    for layer in (config, stage_config):
        merged |= layer.get("lambda_functions", {}).get(name, {})
    return merged


def app_functions() -> list[Function]:
    """The functions `chalice package` makes for the app, with the logical ids it gives them."""
    from app import app

    found = [Function(API_HANDLER, "APIHandler")] if app.routes else []
    found += [Function(f.name, logical_id(f.name)) for f in app.pure_lambda_functions]
    for source in app.event_sources:
        found.append(Function(source.name, logical_id(source.name), getattr(source, "queue", None)))
    return found


def tables(settings: Settings) -> dict[str, Any]:
    """One AWS::DynamoDB::Table per model: keys, attribute types, indexes and projections, TTL."""
    from pynamodb.attributes import TTLAttribute

    from chalicelib.storage.tables import MODELS

    resources = {}
    for table, model in MODELS.items():
        schema: dict[str, Any] = dict(model._get_schema())
        properties: dict[str, Any] = {
            "TableName": settings.table_name(table),
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": sorted(schema["attribute_definitions"], key=lambda a: a["AttributeName"]),
            "KeySchema": _keys(schema["key_schema"]),
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        }
        for kind, prop in (("global_secondary_indexes", "GlobalSecondaryIndexes"),
                           ("local_secondary_indexes", "LocalSecondaryIndexes")):
            indexes = [{"IndexName": index["index_name"], "KeySchema": _keys(index["key_schema"]),
                        "Projection": index["projection"]} for index in schema.get(kind) or []]
            if indexes:
                properties[prop] = sorted(indexes, key=lambda i: i["IndexName"])
        ttl = [name for name, attr in model.get_attributes().items() if isinstance(attr, TTLAttribute)]
        if ttl:
            properties["TimeToLiveSpecification"] = {"AttributeName": ttl[0], "Enabled": True}
        # Retain: deleting the stack must never delete keys, generations or logs.
        resources[table_id(table)] = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                                      "UpdateReplacePolicy": "Retain", "Properties": properties}
    return resources


def _keys(key_schema: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """DynamoDB wants the HASH key first."""
    return sorted(({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in key_schema),
                  key=lambda k: k["KeyType"] != "HASH")


def index_names(table: str) -> list[str]:
    from chalicelib.storage.tables import MODELS

    schema: dict[str, Any] = dict(MODELS[table]._get_schema())
    return sorted(i["index_name"] for kind in ("global_secondary_indexes", "local_secondary_indexes")
                  for i in schema.get(kind) or [])


def queues(settings: Settings, worker_timeout: int) -> dict[str, Any]:
    """The refresh queue (visibility timeout six worker timeouts) and its dead-letter queue."""
    return {
        "RefreshDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"{settings.refresh_queue_name}-dlq",
            "MessageRetentionPeriod": 14 * 86400,
            "SqsManagedSseEnabled": True,
        }},
        "RefreshQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": settings.refresh_queue_name,
            "VisibilityTimeout": VISIBILITY_PER_TIMEOUT * worker_timeout,
            # A refresh message older than a day is moot: every tick queues the keypairs still due.
            "MessageRetentionPeriod": 86400,
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]},
                              "maxReceiveCount": settings.refresh_max_receives},
        }},
    }


def envelope_key(settings: Settings) -> dict[str, Any]:
    """The KMS key that wraps disk keys' data keys, and its alias. Retained: deleting it loses every disk key."""
    if not settings.kms_key_id.startswith("alias/"):
        raise SystemExit("ROTASIGN_KMS_KEY_ID of a packaged stage must be the alias the template creates.")
    return {
        "EnvelopeKey": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                        "Properties": {
                            "Description": f"rotasign {settings.stage}: wraps the data keys of disk-stored keys",
                            "EnableKeyRotation": True,
                            # The account's IAM policies decide who uses the key (the functions' roles below).
                            "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                                "Sid": "AccountIamPolicies", "Effect": "Allow",
                                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                                "Action": "kms:*", "Resource": "*"}]},
                        }},
        "EnvelopeKeyAlias": {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": settings.kms_key_id, "TargetKeyId": {"Ref": "EnvelopeKey"}}},
    }


def token_secret(settings: Settings) -> dict[str, Any]:
    """The pagination-token secret: 64 random letters and digits, from which each process derives its key."""
    if not settings.token_key_secret:
        raise SystemExit("A packaged stage needs ROTASIGN_TOKEN_KEY_SECRET (the secret's name) in its environment.")
    return {"TokenKeySecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
        "Name": settings.token_key_secret,
        "Description": f"rotasign {settings.stage}: seals pagination tokens (shared by every process)",
        "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True, "IncludeSpace": False},
    }}}


def alarms(settings: Settings) -> dict[str, Any]:
    """Alarms on the operator metrics (per stage) and the dead-letter queue, sent to one SNS topic."""
    actions = {"AlarmActions": [{"Ref": "AlarmTopic"}], "OKActions": [{"Ref": "AlarmTopic"}]}
    stage = [{"Name": "stage", "Value": settings.stage}]
    interval = settings.schedule_seconds
    return {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"rotasign-{settings.stage}-alarms"}},
        "RefreshLagAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmDescription": "A due dynamic keypair waits more than one interval for its refresh, or no tick "
                                "has reported for two intervals.",
            "Namespace": "rotasign", "MetricName": "refresh_lag_seconds", "Dimensions": stage,
            "Statistic": "Maximum", "Period": max(60, interval), "EvaluationPeriods": 2,
            "Threshold": interval, "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "breaching", **actions}},
        "RefreshFailuresAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmDescription": "Scheduled refreshes (or slices of the due index) are failing.",
            "Namespace": "rotasign", "MetricName": "refresh_failures", "Dimensions": stage,
            "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching", **actions}},
        "DeadLetterAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmDescription": "Refresh messages failed every receive and wait in the dead-letter queue.",
            "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RefreshDeadLetterQueue", "QueueName"]}}],
            "Statistic": "Maximum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching", **actions}},
    }


def gateway_responses() -> dict[str, Any]:
    """`x-amazon-apigateway-gateway-responses`: API Gateway's own errors with the API's error body."""
    responses = {}
    for kind, (status, code, message) in GATEWAY_RESPONSES.items():
        text = json.dumps(message) if message else "$context.error.messageString"  # the latter is quoted already
        details = '{"request_id": "$context.requestId"}'
        body = f'{{"error": {{"code": "{code}", "message": {text}, "details": {details}}}}}'
        response: dict[str, Any] = {
            "responseParameters": {"gatewayresponse.header.Content-Type": "'application/json'",
                                   "gatewayresponse.header.X-Content-Type-Options": "'nosniff'"},
            "responseTemplates": {"application/json": body},
        }
        if code == "throttled":
            response["responseParameters"]["gatewayresponse.header.Retry-After"] = "'1'"
        if status is not None:
            response["statusCode"] = status
        responses[kind] = response
    return responses


def function_name(stage: str, function: Function) -> str:
    """A function's name in AWS, fixed (`rotasign-dev-bootstrap`) so that its log group can be named before it."""
    return f"rotasign-{stage}-{function.name}"


def log_groups(stage: str, functions: list[Function]) -> dict[str, Any]:
    """Each function's log group, made here so that it has a retention and the policy can name it."""
    return {f"{f.logical_id}LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": f"/aws/lambda/{function_name(stage, f)}", "RetentionInDays": LOG_RETENTION_DAYS}}
        for f in functions}


def policy(settings: Settings, functions: list[Function], *, checkpointer: bool = False) -> dict[str, Any]:
    """The stage's IAM policy: named resources, the actions the code uses. Every function's role gets it;
    the checkpointer's (`checkpointer=True`) also writes the transparency trees and lists the accounts."""
    from chalicelib.storage.retention import LOG_TABLES
    from chalicelib.storage.tables import MODELS

    def arns(names: Iterable[str]) -> list[Any]:
        found: list[Any] = []
        for table in names:
            found.append({"Fn::GetAtt": [table_id(table), "Arn"]})
            found += [{"Fn::Sub": f"${{{table_id(table)}.Arn}}/index/{index}"} for index in index_names(table)]
        return found

    state = [t for t in MODELS if t not in LOG_TABLES and t not in TREE_TABLES]
    secrets: list[Any] = [{"Ref": "TokenKeySecret"}]
    if settings.hsm_pin_secret:
        # A secret's ARN ends in six random characters: `-??????` names exactly one secret of that name.
        secrets.append({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:"
                                   f"secret:{settings.hsm_pin_secret}-??????"})
    statements = [
        {"Sid": "StateTables", "Effect": "Allow", "Action": list(STATE_ACTIONS), "Resource": arns(state)},
        {"Sid": "AppendOnlyLogs", "Effect": "Allow", "Action": list(LOG_ACTIONS),
         "Resource": arns(t for t in MODELS if t in LOG_TABLES)},
        {"Sid": "EnvelopeKey", "Effect": "Allow", "Action": list(KMS_ACTIONS),
         "Resource": [{"Fn::GetAtt": ["EnvelopeKey", "Arn"]}]},
        {"Sid": "RefreshQueue", "Effect": "Allow", "Action": list(QUEUE_ACTIONS),
         "Resource": [{"Fn::GetAtt": ["RefreshQueue", "Arn"]}]},
        {"Sid": "TreeReads", "Effect": "Allow", "Action": list(TREE_READS), "Resource": arns(TREE_TABLES)},
        {"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secrets},
        {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [{"Fn::GetAtt": [f"{f.logical_id}LogGroup", "Arn"]} for f in functions]},
    ]
    if checkpointer:
        statements += [
            {"Sid": "TreeWrites", "Effect": "Allow", "Action": list(TREE_WRITES), "Resource": arns(TREE_TABLES)},
            {"Sid": "AccountDirectory", "Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": arns(SCANNED)},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def merge_template(stage: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the stage needs beside what `chalice package` makes, to merge into its template."""
    environment = stage_environment(stage, config)
    settings = settings_from(environment)
    functions = app_functions()
    workers = [f for f in functions if f.sqs_queue]
    if not workers:
        raise SystemExit("The app has no SQS worker; the refresh queue would have no consumer.")
    worker_timeout = max(int(function_settings(stage, f.name, config)["lambda_timeout"]) for f in workers)
    resources: dict[str, Any] = {
        **tables(settings), **queues(settings, worker_timeout), **envelope_key(settings),
        **token_secret(settings), **alarms(settings), **log_groups(stage, functions),
        "RestAPI": {"Properties": {"DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses()}}},
    }
    for function in functions:
        resources[function.logical_id] = {"Properties": {"FunctionName": function_name(stage, function)}}
    for worker in workers:
        # `on_sqs_message` names the local queue; each stage consumes its own. The merge joins dicts key by
        # key, so the queue is replaced as chalice wrote it, an `Fn::Sub` (of the queue's ARN here).
        resources[worker.logical_id]["Properties"]["Events"] = {f"{worker.logical_id}SqsEventSource": {
            "Properties": {"Queue": {"Fn::Sub": "${RefreshQueue.Arn}"}}}}
    outputs = {
        "BootstrapFunction": {"Value": {"Ref": "Bootstrap"}, "Description": "aws lambda invoke it once per account"},
        "RefreshQueueUrl": {"Value": {"Ref": "RefreshQueue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "RefreshDeadLetterQueue"}},
        "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}, "Description": "subscribe operators to it"},
        "EnvelopeKeyArn": {"Value": {"Fn::GetAtt": ["EnvelopeKey", "Arn"]}},
    }
    if not any(f.name == "bootstrap" for f in functions):
        del outputs["BootstrapFunction"]
    return {"Resources": resources, "Outputs": outputs}


def write(stage: str, out: Path) -> tuple[Path, Path]:
    """Write the stage's merge template and policy under `out`; returns their paths."""
    settings = settings_from(stage_environment(stage))
    out.mkdir(parents=True, exist_ok=True)
    merge, policy_file = out / "merge.json", out / "policy.json"
    _replace(merge, json.dumps(merge_template(stage), indent=2, sort_keys=True) + "\n")
    functions = app_functions()
    _replace(policy_file, json.dumps(policy(settings, functions), indent=2) + "\n")
    checkpointer = policy(settings, functions, checkpointer=True)
    _replace(out / CHECKPOINTER_POLICY, json.dumps(checkpointer, indent=2) + "\n")
    return merge, policy_file


def _replace(path: Path, text: str) -> None:
    """Write whole or not at all: two packagings at once (parallel tests) never read a half-written file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
