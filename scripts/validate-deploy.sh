#!/usr/bin/env bash
# Checks the deployment files offline (scripts/setup.sh installs the tools): the alert rules
# with promtool (syntax, and their unit tests), the compose demo's Prometheus configuration,
# every YAML and JSON file parses, the Kubernetes manifests against the Kubernetes schemas
# and against each other (scripts/validate-deploy.py), and docker-compose.yml with Compose
# when a Compose CLI is installed (it needs no container engine for that).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/deploy-venv
for tool in promtool "$venv/bin/python"; do
  if ! command -v "$tool" >/dev/null; then
    echo "validate-deploy: $tool is missing: run scripts/setup.sh" >&2
    exit 1
  fi
done

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
promtool check config deploy/prometheus/prometheus.yml
"$venv/bin/python" scripts/validate-deploy.py

if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config --quiet
  echo "validate-deploy: docker-compose.yml valid (docker compose)"
elif command -v docker-compose >/dev/null; then
  docker-compose -f docker-compose.yml config --quiet
  echo "validate-deploy: docker-compose.yml valid (docker-compose $(docker-compose version --short))"
else
  echo "validate-deploy: no Compose CLI here: docker-compose.yml only parsed as YAML, not checked"
fi
