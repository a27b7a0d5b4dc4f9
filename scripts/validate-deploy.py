"""Offline checks of deploy/ and docker-compose.yml, run by scripts/validate-deploy.sh.

- Every YAML and JSON file under deploy/ (and docker-compose.yml) parses.
- Every Kubernetes manifest of a built-in kind validates, strictly (no unknown fields), against
  the Kubernetes OpenAPI schemas that the kubernetes-validate package ships, for the oldest and
  newest versions checked below.
- Custom resources have no schema here: KEDA's ScaledObject gets a structural check of the
  fields used (types, required keys, the Kafka trigger's metadata), not KEDA's own CRD schema;
  the PrometheusRule's spec must equal deploy/prometheus/alerts.yml (which promtool checks);
  prometheus-adapter's rule is parsed and its shape checked.
- The files agree with each other: ports, probe paths, names, the consumer group, topics and
  the most replicas.

Exits 1 with one line per problem.
"""

import json
import pathlib
import sys
import tomllib

import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
# The oldest Kubernetes these manifests are meant for (PodDisruptionBudget's
# unhealthyPodEvictionPolicy is GA from 1.31) and the newest the package knows.
K8S_VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
HTTP_PORT = 9898

problems = []


def problem(path, message):
    problems.append(f"{path.relative_to(ROOT)}: {message}")


def load_all():
    """Every YAML and JSON file of deploy/ and the compose file, parsed: {path: [documents]}."""
    files = sorted(
        p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json") and p.is_file()
    )
    files.append(ROOT / "docker-compose.yml")
    parsed = {}
    for path in files:
        try:
            with path.open(encoding="utf-8") as f:
                if path.suffix == ".json":
                    parsed[path] = [json.load(f)]
                else:
                    parsed[path] = [d for d in yaml.safe_load_all(f) if d is not None]
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            problem(path, f"does not parse: {err}")
    return parsed


def check_scaled_object(path, doc):
    """KEDA's ScaledObject: the fields used, with their types (not KEDA's CRD schema)."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return problem(path, "ScaledObject: spec missing")
    allowed = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
               "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback",
               "advanced", "triggers"}
    for key in set(spec) - allowed:
        problem(path, f"ScaledObject: unknown field spec.{key}")
    if not isinstance(spec.get("scaleTargetRef", {}).get("name"), str):
        problem(path, "ScaledObject: spec.scaleTargetRef.name must be a string")
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        if key in spec and not (isinstance(spec[key], int) and spec[key] >= 0):
            problem(path, f"ScaledObject: spec.{key} must be a non-negative integer")
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problem(path, "ScaledObject: minReplicaCount above maxReplicaCount")
    advanced = spec.get("advanced", {})
    for key in set(advanced) - {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount",
                                "scalingModifiers"}:
        problem(path, f"ScaledObject: unknown field spec.advanced.{key}")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return problem(path, "ScaledObject: spec.triggers must be a non-empty list")
    for i, trigger in enumerate(triggers):
        where = f"ScaledObject: spec.triggers[{i}]"
        for key in set(trigger) - {"type", "name", "metadata", "authenticationRef",
                                   "metricType", "useCachedMetrics"}:
            problem(path, f"{where}: unknown field {key}")
        metadata = trigger.get("metadata")
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()
        ):
            problem(path, f"{where}.metadata must map names to strings (quote numbers)")
            continue
        if trigger.get("type") != "kafka":
            problem(path, f"{where}.type: only kafka triggers are expected here")
            continue
        for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
            if not metadata.get(key):
                problem(path, f"{where}.metadata.{key} missing")
        for key in ("lagThreshold", "activationLagThreshold"):
            if key in metadata and not metadata[key].isdigit():
                problem(path, f"{where}.metadata.{key} must be a whole number")
        for key in ("allowIdleConsumers", "excludePersistentLag", "limitToPartitionsWithLag"):
            if key in metadata and metadata[key] not in ("true", "false"):
                problem(path, f"{where}.metadata.{key} must be \"true\" or \"false\"")
        if metadata.get("offsetResetPolicy", "latest") not in ("latest", "earliest"):
            problem(path, f"{where}.metadata.offsetResetPolicy must be latest or earliest")


def check_prometheus_rule(path, doc):
    """The PrometheusRule's spec is alerts.yml, which promtool checks."""
    with (DEPLOY / "prometheus" / "alerts.yml").open(encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    if doc.get("spec") != rules:
        problem(path, "PrometheusRule: spec differs from deploy/prometheus/alerts.yml")


def check_adapter_config(path, doc):
    """prometheus-adapter's configuration: an external rule serving trendstream_consumer_lag."""
    try:
        config = yaml.safe_load(doc["data"]["config.yaml"])
    except (KeyError, TypeError, yaml.YAMLError) as err:
        return problem(path, f"prometheus-adapter config.yaml does not parse: {err}")
    rules = config.get("externalRules") or []
    names = []
    for i, rule in enumerate(rules):
        for key in ("seriesQuery", "metricsQuery", "name"):
            if key not in rule:
                problem(path, f"externalRules[{i}].{key} missing")
        if "<<.Series>>" not in rule.get("metricsQuery", "") or "<<.LabelMatchers>>" not in rule.get(
            "metricsQuery", ""
        ):
            problem(path, f"externalRules[{i}].metricsQuery must use <<.Series>> and <<.LabelMatchers>>")
        names.append(rule.get("name", {}).get("as"))
    return names


def main():
    parsed = load_all()
    kinds = {}
    adapter_metrics = []
    for path, docs in parsed.items():
        if K8S not in path.parents:
            continue
        for doc in docs:
            kind = doc.get("kind")
            kinds.setdefault(kind, []).append((path, doc))
            if kind == "ScaledObject":
                check_scaled_object(path, doc)
            elif kind == "PrometheusRule":
                check_prometheus_rule(path, doc)
            else:
                if kind == "ConfigMap" and doc["metadata"]["name"] == "prometheus-adapter":
                    adapter_metrics += check_adapter_config(path, doc) or []
                for version in K8S_VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.SchemaNotFoundError:
                        problem(path, f"no schema for {doc.get('apiVersion')} {kind}, and no check of our own")
                        break
                    except kubernetes_validate.ValidationError as err:
                        problem(path, f"{kind} invalid for Kubernetes {version}: {err.message} at {'.'.join(map(str, err.path))}")
    check_consistency(kinds, adapter_metrics)
    for line in problems:
        print(f"validate-deploy: {line}", file=sys.stderr)
    checked = sum(len(v) for v in kinds.values())
    print(f"validate-deploy: {len(parsed)} files parsed, {checked} Kubernetes objects checked "
          f"({', '.join(sorted(k for k in kinds))}), {len(problems)} problems")
    return 1 if problems else 0


def one(kinds, kind, name="trendstream"):
    matches = [(p, d) for p, d in kinds.get(kind, []) if d["metadata"]["name"] == name]
    if len(matches) != 1:
        problems.append(f"deploy/kubernetes: expected one {kind} named {name}, found {len(matches)}")
        return None, {}
    return matches[0]


def check_consistency(kinds, adapter_metrics):
    deploy_path, deployment = one(kinds, "Deployment")
    _, config_map = one(kinds, "ConfigMap")
    _, service = one(kinds, "Service")
    _, pdb = one(kinds, "PodDisruptionBudget")
    keda_path, scaled = one(kinds, "ScaledObject")
    hpa_path, hpa = one(kinds, "HorizontalPodAutoscaler")
    if not deployment:
        return
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for what, selector in (("Service", service.get("spec", {}).get("selector", {})),
                           ("PodDisruptionBudget", pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}))):
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problem(deploy_path, f"the {what}'s selector does not match the pods' labels")
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("TRENDSTREAM_HTTP__LISTEN") != f"0.0.0.0:{HTTP_PORT}":
        problem(deploy_path, f"TRENDSTREAM_HTTP__LISTEN must be 0.0.0.0:{HTTP_PORT}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports.get("http") != HTTP_PORT:
        problem(deploy_path, f"container port http must be {HTTP_PORT}")
    if [p.get("port") for p in service.get("spec", {}).get("ports", [])] != [HTTP_PORT]:
        problem(deploy_path, f"the Service must expose {HTTP_PORT}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/ready"), ("startupProbe", "/healthz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problem(deploy_path, f"{probe} must get {path}")
    config = tomllib.loads(config_map["data"]["trendstream.toml"])
    group = config["kafka"]["group_id"]
    topics = sorted(s["topic"] for s in config["streams"].values() if s.get("enabled", True))
    triggers = scaled.get("spec", {}).get("triggers", [])
    if sorted(t["metadata"].get("topic") for t in triggers) != topics:
        problem(keda_path, f"the triggers' topics must be the streams' topics {topics}")
    if any(t["metadata"].get("consumerGroup") != group for t in triggers):
        problem(keda_path, f"consumerGroup must be kafka.group_id ({group})")
    if scaled.get("spec", {}).get("maxReplicaCount") != hpa.get("spec", {}).get("maxReplicas"):
        problem(hpa_path, "maxReplicas must equal the ScaledObject's maxReplicaCount (the partition count)")
    for path, target in ((keda_path, scaled.get("spec", {}).get("scaleTargetRef", {})),
                         (hpa_path, hpa.get("spec", {}).get("scaleTargetRef", {}))):
        if target.get("name") != deployment["metadata"]["name"]:
            problem(path, "scaleTargetRef must name the Deployment")
    for metric in hpa.get("spec", {}).get("metrics", []):
        name = metric.get("external", {}).get("metric", {}).get("name")
        if metric.get("type") == "External" and name not in adapter_metrics:
            problem(hpa_path, f"external metric {name} is not served by the prometheus-adapter rule")


if __name__ == "__main__":
    sys.exit(main())
