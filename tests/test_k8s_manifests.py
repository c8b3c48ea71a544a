"""deploy/k8s/ validated offline (kubernetes-validate, strict) and checked against the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from nepse_perf.cli import build_parser
from nepse_perf.lessons.hpa import HPAConfig

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31"


def docs() -> dict[str, dict]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_typo() -> None:
    doc = docs()["Service"]
    bad = {**doc, "spec": {**doc["spec"], "portz": doc["spec"]["ports"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_all_three_kinds_are_there() -> None:
    assert set(docs()) == {"Deployment", "Service", "HorizontalPodAutoscaler"}


def container() -> dict:
    (c,) = docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_probes_use_the_service_endpoints() -> None:
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in port_names


def test_container_args_are_a_valid_serve_command() -> None:
    args = container()["args"]
    assert args[:2] == ["nepse-perf", "serve"]
    ns = build_parser().parse_args(args[1:])
    assert ns.command == "serve" and ns.workers == 1 and ns.threads == 1
    (port,) = container()["ports"]
    assert port["containerPort"] == ns.port


def test_resources_and_non_root() -> None:
    c = container()
    pod = docs()["Deployment"]["spec"]["template"]["spec"]
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # the pod's grace period covers the server's drain (--graceful-timeout)
    args = c["args"]
    graceful = float(args[args.index("--graceful-timeout") + 1])
    assert pod["terminationGracePeriodSeconds"] > graceful


def test_service_and_hpa_point_at_the_deployment() -> None:
    d = docs()
    labels = d["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert d["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert d["Service"]["spec"]["selector"].items() <= labels.items()
    assert d["Service"]["spec"]["ports"][0]["targetPort"] in {
        p["name"] for p in container()["ports"]
    }
    ref = d["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", d["Deployment"]["metadata"]["name"])
    assert d["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"


def test_hpa_manifest_matches_the_simulator_defaults() -> None:
    spec = docs()["HorizontalPodAutoscaler"]["spec"]
    cfg = HPAConfig()
    assert (spec["minReplicas"], spec["maxReplicas"]) == (cfg.min_replicas, cfg.max_replicas)
    (metric,) = spec["metrics"]
    assert metric["resource"]["target"]["averageUtilization"] == round(cfg.target * 100)
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == cfg.scale_up_window_s
    assert down["stabilizationWindowSeconds"] == cfg.scale_down_window_s
    as_tuples = [(p.kind, p.value, p.period_s) for p in cfg.scale_up_policies]
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]] == as_tuples
    as_tuples = [(p.kind, p.value, p.period_s) for p in cfg.scale_down_policies]
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]] == as_tuples


def test_dockerfile_runs_the_same_command_as_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert user and not user.group(1).startswith(("0", "root"))
    assert re.search(r"^FROM python:3\.\d+-slim", text, flags=re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert cmd
    args = json.loads(cmd.group(1))
    ns = build_parser().parse_args(args[1:])
    assert ns.command == "serve" and str(ns.model) == "/app/model" and ns.port == 8000
    uid = docs()["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user.group(1).split(":")[0] == str(uid)
