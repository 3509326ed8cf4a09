#!/usr/bin/env bash
# Deploy rotasign's packaged stage to a running LocalStack (Docker), exactly as to AWS: `make package`, then
# CloudFormation creates everything (tables, queues, KMS key, token secret, alarms, functions, API) and the
# bootstrap function makes the first account. Not used by the tests or `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
STAGE="${STAGE:-dev}"
ACCOUNT="${ACCOUNT:-local}"
BUCKET="rotasign-deploy-${STAGE}"
OUT="build/package/${STAGE}"

make package STAGE="$STAGE"
awslocal s3 mb "s3://${BUCKET}" >/dev/null 2>&1 || true
awslocal cloudformation package --template-file "${OUT}/sam.json" --s3-bucket "$BUCKET" \
  --output-template-file "${OUT}/packaged.yaml"
awslocal cloudformation deploy --template-file "${OUT}/packaged.yaml" --stack-name "rotasign-${STAGE}" \
  --s3-bucket "$BUCKET" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND
awslocal cloudformation describe-stacks --stack-name "rotasign-${STAGE}" --query 'Stacks[0].Outputs' --output table
# The first account and its admin's API key (shown once: keep it, then delete the file).
awslocal lambda invoke --function-name "rotasign-${STAGE}-bootstrap" --cli-binary-format raw-in-base64-out \
  --payload "{\"account\": \"${ACCOUNT}\"}" "${OUT}/bootstrap.json" >/dev/null
cat "${OUT}/bootstrap.json"; echo
api_id=$(awslocal cloudformation describe-stacks --stack-name "rotasign-${STAGE}" \
  --query "Stacks[0].Outputs[?OutputKey=='RestAPIId'].OutputValue" --output text)
echo "ROTASIGN_ENDPOINT=http://localhost:4566/restapis/${api_id}/api/_user_request_"
