"""The deploy units: Kubernetes manifests, systemd unit, compose stack, container image.

Kubernetes objects are validated offline against the API schemas bundled in kubernetes-validate.
The two custom resources (KEDA ScaledObject, Prometheus Operator PodMonitor) have no bundled
schema: they are skipped by the schema check, by kind only, and checked here for what FinMon
needs of them instead (target, consumer group, topic, lag threshold, replicas <= partitions,
selectors). The Kustomization is a kustomize file, not an API object.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import Settings, load_settings
from tests.deploy.tools import DEPLOY, REPO

K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
UNIT = DEPLOY / "systemd" / "finmon@.service"
K8S_VERSION = "1.30.0"
NO_SCHEMA_KINDS = {"ScaledObject", "PodMonitor", "Kustomization"}


def _k8s_objects() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in _k8s_objects()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _configmap_settings(tmp_path: Path) -> Settings:
    text = _one("ConfigMap", "finmon-config")["data"]["finmon.yaml"]
    path = tmp_path / "finmon.yaml"
    path.write_text(text)
    return load_settings(path, environ={})


def test_manifests_match_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (pip install -e .[dev])"
    )
    checked = set()
    for obj in _k8s_objects():
        if obj["kind"] in NO_SCHEMA_KINDS:
            continue  # custom resources / kustomize: checked by the tests below instead
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked.add(obj["kind"])
    assert {"Deployment", "StatefulSet", "ConfigMap", "Secret", "PodDisruptionBudget"} <= checked


def test_kustomization_lists_every_manifest() -> None:
    listed = set(_one("Kustomization")["resources"])
    shipped = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == shipped


def _pod_spec(kind: str, name: str) -> dict[str, Any]:
    return dict(_one(kind, name)["spec"]["template"]["spec"])


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "finmon-classify"), ("StatefulSet", "finmon-aggregate")]
)
def test_workloads_probe_health_run_unprivileged_and_drain_in_time(
    kind: str, name: str, tmp_path: Path
) -> None:
    settings = _configmap_settings(tmp_path)
    pod = _pod_spec(kind, name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown.grace_period_ms / 1000
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics.port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[settings.state.dir] == "state"
    assert "/etc/finmon" in mounts


def test_classify_mounts_the_model_and_aggregate_keeps_state_on_a_volume(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    classify = _pod_spec("Deployment", "finmon-classify")
    (container,) = classify["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert settings.model.path.startswith("/models/")
    assert mounts["/models"]["readOnly"] is True
    volumes = {v["name"]: v for v in classify["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "finmon-models"
    aggregate = _one("StatefulSet", "finmon-aggregate")["spec"]
    assert aggregate["replicas"] == 1  # one aggregator: ticker and overall windows need it all
    (claim,) = aggregate["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"


def test_keda_scales_classify_on_its_group_lag_up_to_the_partitions(tmp_path: Path) -> None:
    settings = _configmap_settings(tmp_path)
    scaled = _one("ScaledObject", "finmon-classify")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == _one("Deployment")["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["maxReplicaCount"] <= settings.kafka.topic_partitions
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == settings.kafka.classify_group
    assert meta["topic"] == settings.kafka.raw_topic
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    threshold = int(meta["lagThreshold"])
    assert threshold > 0
    docs = (REPO / "docs" / "operations.md").read_text()
    assert f"lagThreshold: {threshold}" in docs, "docs/operations.md must size this threshold"


def test_podmonitor_and_budgets_select_the_pods() -> None:
    pod_labels = [
        _one(kind, name)["spec"]["template"]["metadata"]["labels"]
        for kind, name in (("Deployment", "finmon-classify"), ("StatefulSet", "finmon-aggregate"))
    ]
    monitor = _one("PodMonitor", "finmon")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert all(wanted.items() <= labels.items() for labels in pod_labels)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    # The Prometheus rules select job="finmon".
    assert {"targetLabel": "job", "replacement": "finmon"} in endpoint["relabelings"]
    budgets = [d for d in _k8s_objects() if d["kind"] == "PodDisruptionBudget"]
    selected = [b["spec"]["selector"]["matchLabels"] for b in budgets]
    for labels in pod_labels:
        assert any(sel.items() <= labels.items() for sel in selected)


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
    return keys


def test_configmap_is_the_example_config_with_in_cluster_values(tmp_path: Path) -> None:
    """Rendered by scripts/k8s_configmap.py. A key added to the example since is only missing
    (its default applies), so that is not a failure; a key the example no longer has is."""
    script = runpy.run_path(str(REPO / "scripts" / "k8s_configmap.py"))
    example = yaml.safe_load(script["EXAMPLE"].read_text())
    shipped = yaml.safe_load(_one("ConfigMap", "finmon-config")["data"]["finmon.yaml"])
    stale = _keys(shipped) - _keys(example)
    assert not stale, (
        f"regenerate: python scripts/k8s_configmap.py > deploy/k8s/configmap.yaml ({stale})"
    )
    rendered = yaml.safe_load(
        yaml.safe_load(script["render"](script["EXAMPLE"].read_text()))["data"]["finmon.yaml"]
    )
    for (section, key), _ in script["IN_CLUSTER"].items():
        assert shipped[section][key] == rendered[section][key]
    settings = _configmap_settings(tmp_path)
    assert settings.metrics.host == "0.0.0.0" and settings.model.path == "/models/current"
    secret = _one("Secret", "finmon-secrets")["stringData"]
    with_secrets = load_settings(tmp_path / "finmon.yaml", environ=secret)
    assert with_secrets.alerts.webhook_secret is not None
    assert with_secrets.reload.admin_token is not None


# -- systemd ------------------------------------------------------------------------------------


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not found: install the Debian package systemd")
    return tool


def _verify(tool: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    probe = tmp_path / "finmon-probe.service"
    probe.write_text(f"[Service]\nExecStart={shutil.which('true')}\n")
    if _verify(tool, probe).returncode != 0:
        pytest.skip("systemd-analyze verify fails on a trivial unit here: unusable on this host")
    finmon = Path(sys.executable).with_name("finmon")
    if not os.access(finmon, os.X_OK):
        pytest.skip(f"{finmon} not installed: run scripts/setup.sh")
    # verify checks that ExecStart exists: point the unit at this checkout's finmon.
    text = UNIT.read_text().replace("/opt/finmon/.venv/bin/finmon", str(finmon))
    for role in ("classify", "aggregate", "source", "all"):
        unit = tmp_path / f"finmon@{role}.service"
        unit.write_text(text)
        result = _verify(tool, unit)
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # Exposure level at most 3.0 of 10 (the threshold is given in tenths).
    security = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=30", str(tmp_path / "finmon@all.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-1500:]
    directives = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line)
    )
    assert directives["DynamicUser"] == "yes" and directives["ProtectSystem"] == "strict"
    assert directives["Restart"] == "on-failure"
    stop_sec = int(directives["TimeoutStopSec"].rstrip("s"))
    grace_ms = int(text.split("FINMON_SHUTDOWN__GRACE_PERIOD_MS=")[1].split()[0])
    assert stop_sec > grace_ms / 1000  # the drain ends before systemd kills


# -- compose ------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


def test_compose_images_are_pinned_and_ports_bind_loopback_without_clashes() -> None:
    services = _compose()["services"]
    assert {"kafka", "classify", "aggregate", "prometheus", "alertmanager", "grafana"} <= set(
        services
    )
    host_ports = []
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin the image tag ({image})"
        for mapping in service.get("ports", []):
            host, host_port, container_port = mapping.split(":")
            assert host == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
            assert int(container_port) > 0
            host_ports.append(int(host_port))
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert services["classify"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"


def test_compose_runs_kafka_in_kraft_mode_and_wires_the_stack() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("zookeeper" in name.lower() for name in services)
    assert not any("ZOOKEEPER" in key for key in env)
    finmon_env = services["classify"]["environment"]
    assert finmon_env["FINMON_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    prometheus = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "finmon"  # the rules select job="finmon"
    targets = job["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} == {"classify", "aggregate"}
    alertmanager = yaml.safe_load((COMPOSE / "alertmanager.yml").read_text())
    (receiver,) = alertmanager["receivers"]
    assert receiver["webhook_configs"][0]["url"].startswith("http://webhook-receiver:9110/")


def _host_path(service: dict[str, Any], target: str) -> Path:
    for volume in service["volumes"]:
        source, dest = volume.split(":")[:2]
        if dest == target:
            return (COMPOSE / source).resolve()
    raise AssertionError(f"nothing mounted at {target}")


def test_compose_mounts_exist_and_grafana_gets_the_shipped_dashboard() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source} does not exist"
    grafana = services["grafana"]
    dashboard = _host_path(grafana, "/var/lib/grafana/dashboards/finmon-dashboard.json")
    assert dashboard == (DEPLOY / "grafana" / "finmon-dashboard.json").resolve()
    provider_file = COMPOSE / "grafana" / "provisioning" / "dashboards" / "finmon.yml"
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    rules = _host_path(services["prometheus"], "/etc/prometheus/rules")
    assert rules == (DEPLOY / "prometheus" / "rules").resolve()


# -- container image ----------------------------------------------------------------------------


def test_dockerfile_is_cpu_by_default_non_root_and_does_not_bake_a_model() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert not re.search(r"^COPY .*models?\b", text, re.M | re.I)
    assert "FINMON_MODEL__PATH=/models/current" in text
    assert "/healthz" in text
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1] == "*"  # the context sends nothing but what is listed


def _container_builder() -> list[str]:
    for tool in ("podman", "buildah"):
        path = shutil.which(tool)
        if path:
            return [path, "build"] if tool == "podman" else [path, "bud"]
    pytest.skip(
        "no container runtime (podman or buildah) on this host: the Dockerfile build is skipped; "
        "install the Debian package podman to run it (a Docker engine does not run here)"
    )


def _base_image() -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert match
    return match.group(1)


@pytest.mark.slow
def test_dockerfile_builds_where_a_runtime_is_present() -> None:
    builder = _container_builder()
    base = _base_image()
    runtime = builder[0]
    present = subprocess.run(
        [runtime, "image", "exists" if runtime.endswith("podman") else "inspect", base],
        capture_output=True,
        check=False,
    )
    if present.returncode != 0:
        pytest.skip(f"base image {base} is not in local storage and registries are not reachable")
    result = subprocess.run(
        [*builder, "--pull=never", "-f", str(DOCKERFILE), "-t", "finmon:test", str(REPO)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_compose_passes_no_secret_on_a_command_line() -> None:
    for name, service in _compose()["services"].items():
        args = f"{service.get('entrypoint', '')} {service.get('command', '')}"
        assert "--secret" not in args and "--bearer-token" not in args, name
