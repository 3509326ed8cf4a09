#!/usr/bin/env bash
# Deploy rotasign to a running LocalStack (Docker). Not used by tests or `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
awslocal kms create-alias --alias-name alias/rotasign-dev \
  --target-key-id "$(awslocal kms create-key --query KeyMetadata.KeyId --output text)" || true
dlq_url=$(awslocal sqs create-queue --queue-name rotasign-refresh-dlq --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
awslocal sqs create-queue --queue-name rotasign-refresh \
  --attributes "{\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\",\"VisibilityTimeout\":\"120\"}"
ROTASIGN_STAGE=dev ROTASIGN_TABLE_PREFIX=rotasign-dev- AWS_ENDPOINT_URL=http://localhost:4566 \
  python -c "from chalicelib.settings import get_settings; from chalicelib.storage.models import create_tables; print(create_tables(get_settings()))"
chalice package --stage dev --pkg-format cloudformation build/
awslocal cloudformation package --template-file build/sam.json --s3-bucket rotasign-deploy \
  --output-template-file build/packaged.yaml 2>/dev/null || true
awslocal cloudformation deploy --template-file build/sam.json --stack-name rotasign-dev \
  --capabilities CAPABILITY_IAM
awslocal cloudformation describe-stacks --stack-name rotasign-dev --query 'Stacks[0].Outputs'
