"""deploy/kubernetes: every manifest validates against the Kubernetes API schema (offline, from the
kubernetes-validate package), and the parts that keep the service safe and running are asserted:
probes, security context, secret references, the drain before SIGTERM.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service import config as service_config

ROOT = Path(__file__).resolve().parent.parent
KUBE_DIR = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
K8S_VERSION = "1.30.0"  # the oldest release the manifests promise to work on (docs/deploy.md)
SECRET_NAME = "blinkpos-secrets"
# What the service needs that must never sit in the ConfigMap or the repository.
SECRET_SETTINGS = {
    "DATABASE_URL", "REDIS_URL", "REDIS_PASSWORD", "BLINKPOS_API_KEY", "API_KEY_ENCRYPTION_KEY",
    "BLINK_WEBHOOK_SECRET",
}


def load(name: str) -> dict:
    return yaml.safe_load((KUBE_DIR / name).read_text(encoding="utf-8"))


def kustomization() -> dict:
    return load("kustomization.yaml")


def resources() -> dict[str, dict]:
    """kind/name -> object, for every resource the kustomization lists."""
    objects = {}
    for name in kustomization()["resources"]:
        for document in yaml.safe_load_all((KUBE_DIR / name).read_text(encoding="utf-8")):
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def container(obj: dict) -> dict:
    (only,) = pod_spec(obj)["containers"]
    return only


APP = "Deployment/blinkpos-app"
WORKER = "Deployment/blinkpos-worker"
MIGRATE = "Job/blinkpos-migrate"
WORKLOADS = (APP, WORKER, MIGRATE)


# --- schema ----------------------------------------------------------------------------------
def test_the_kustomization_lists_every_manifest_in_the_directory() -> None:
    listed = set(kustomization()["resources"])
    present = {path.name for path in KUBE_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    kinds = {key.split("/")[0] for key in resources()}
    assert kinds == {
        "ConfigMap", "Job", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }


@pytest.mark.parametrize("key", sorted(resources()))
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(key: str) -> None:
    kubernetes_validate.validate(resources()[key], K8S_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    misspelt = copy.deepcopy(resources()[APP])
    container(misspelt)["readinesProbe"] = container(misspelt).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)
    wrong_type = copy.deepcopy(resources()[APP])
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


def test_selectors_match_their_pods_and_the_hpa_pdb_and_service_target_the_app() -> None:
    objects = resources()
    app_labels = objects[APP]["spec"]["template"]["metadata"]["labels"]
    for name in (APP, WORKER):
        selector = objects[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= objects[name]["spec"]["template"]["metadata"]["labels"].items()
    assert objects["Service/blinkpos-app"]["spec"]["selector"].items() <= app_labels.items()
    assert objects["PodDisruptionBudget/blinkpos-app"]["spec"]["selector"]["matchLabels"].items() <= (
        app_labels.items()
    )
    worker_labels = objects[WORKER]["spec"]["template"]["metadata"]["labels"]
    assert not objects["Service/blinkpos-app"]["spec"]["selector"].items() <= worker_labels.items()
    target = objects["HorizontalPodAutoscaler/blinkpos-app"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "blinkpos-app")
    assert objects["Service/blinkpos-app"]["spec"]["ports"][0]["targetPort"] == "http"


def test_nothing_cluster_specific_is_committed() -> None:
    for key, obj in resources().items():
        assert "namespace" not in obj["metadata"], f"{key}: set the namespace in an overlay"
    for name in WORKLOADS:
        image = container(resources()[name])["image"]
        assert image == "blinkpos-payments", f"{name}: the registry and tag come from kustomize images"
    assert [image["name"] for image in kustomization()["images"]] == ["blinkpos-payments"]


# --- commands and probes ---------------------------------------------------------------------
def test_each_workload_runs_its_role_of_the_image() -> None:
    objects = resources()
    assert "command" not in container(objects[APP]) and "args" not in container(objects[APP]), (
        "the app runs the image's gunicorn CMD"
    )
    assert container(objects[MIGRATE])["command"] == ["python", "-m", "service", "db", "upgrade"]
    assert pod_spec(objects[MIGRATE])["restartPolicy"] == "Never"
    worker = container(objects[WORKER])["command"]
    assert worker[:4] == ["python", "-m", "service", "worker"]
    from service.cli import build_parser

    parsed = build_parser().parse_args(worker[3:])  # the flags exist and parse
    assert parsed.metrics_port == 9100
    assert parsed.heartbeat_file == "/tmp/worker-heartbeat"


def test_app_probes_use_livez_for_liveness_and_readyz_for_readiness() -> None:
    app = container(resources()[APP])
    assert app["startupProbe"]["httpGet"]["path"] == "/livez"
    assert app["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert app[probe]["httpGet"]["port"] == "http"
    assert app["ports"] == [{"name": "http", "containerPort": 8080}]
    # The startup probe gives the app a minute to boot before liveness may restart it.
    assert app["startupProbe"]["periodSeconds"] * app["startupProbe"]["failureThreshold"] >= 60


def test_app_drains_behind_the_load_balancer_before_gunicorn_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_deploy_files import load_gunicorn_conf

    app = resources()[APP]
    pause = container(app)["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and int(pause[1]) >= 5
    config = resources()["ConfigMap/blinkpos-config"]["data"]
    graceful = load_gunicorn_conf(monkeypatch, GUNICORN_GRACEFUL_TIMEOUT=config["GUNICORN_GRACEFUL_TIMEOUT"])
    # The kubelet's grace period covers the pause AND gunicorn's own drain, or SIGKILL cuts forwards.
    assert pod_spec(app)["terminationGracePeriodSeconds"] > int(pause[1]) + graceful["graceful_timeout"]
    assert app["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def heartbeat_probe(tmp_path: Path, age_seconds: float | None) -> int:
    """Runs the worker's liveness command against a heartbeat file of the given age (None: none)."""
    probe = container(resources()[WORKER])["livenessProbe"]["exec"]["command"]
    heartbeat = tmp_path / "worker-heartbeat"
    if age_seconds is not None:
        heartbeat.touch()
        past = time.time() - age_seconds
        os.utime(heartbeat, (past, past))
    command = [part.replace("/tmp/worker-heartbeat", str(heartbeat)) for part in probe]
    return subprocess.run(command, capture_output=True, timeout=10).returncode


def test_worker_liveness_probe_passes_on_a_fresh_heartbeat_and_fails_on_a_stale_or_missing_one(
    tmp_path: Path,
) -> None:
    worker = container(resources()[WORKER])
    assert worker["livenessProbe"]["exec"]["command"] == worker["startupProbe"]["exec"]["command"]
    assert "/tmp/worker-heartbeat" in shlex.join(worker["livenessProbe"]["exec"]["command"])
    assert heartbeat_probe(tmp_path, 1) == 0
    assert heartbeat_probe(tmp_path, 300) != 0
    (tmp_path / "worker-heartbeat").unlink()
    assert heartbeat_probe(tmp_path, None) != 0
    assert "readinessProbe" not in worker, "the worker takes no traffic"


# --- security --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", WORKLOADS)
def test_workloads_run_non_root_with_a_read_only_root_filesystem(name: str) -> None:
    obj = resources()[name]
    pod = pod_spec(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the image's app user"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container(obj)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container(obj)["resources"][bound].keys(), (name, bound)


def mounts(obj: dict) -> dict[str, dict]:
    """mountPath -> volume, for the workload's container."""
    volumes = {volume["name"]: volume for volume in pod_spec(obj)["volumes"]}
    return {mount["mountPath"]: volumes[mount["name"]] for mount in container(obj)["volumeMounts"]}


def image_env(name: str) -> str:
    for line in DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        for part in shlex.split(line)[1:] if line.startswith("ENV ") else []:
            key, _, value = part.partition("=")
            if key == name:
                return value
    raise AssertionError(f"the Dockerfile sets no {name}")


def test_the_writable_directories_are_empty_dirs() -> None:
    objects = resources()
    metrics_dir = image_env("PROMETHEUS_MULTIPROC_DIR")
    for name in WORKLOADS:
        for path, volume in mounts(objects[name]).items():
            assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), (name, path)
        assert "/tmp" in mounts(objects[name]), f"{name}: Python and gunicorn need a writable /tmp"
    # gunicorn's on_starting creates the metrics dir under /tmp; the worker writes to it at once.
    assert metrics_dir.startswith("/tmp/")
    assert metrics_dir in mounts(objects[WORKER])
    heartbeat = container(objects[WORKER])["command"][-1].split("=", 1)[1]
    assert Path(heartbeat).parent.as_posix() in mounts(objects[WORKER])


def env_sources(obj: dict) -> tuple[set[str], set[str], list[dict]]:
    """(ConfigMap names, Secret names from envFrom, env entries)."""
    spec = container(obj)
    configmaps = {s["configMapRef"]["name"] for s in spec.get("envFrom", []) if "configMapRef" in s}
    secrets = {s["secretRef"]["name"] for s in spec.get("envFrom", []) if "secretRef" in s}
    return configmaps, secrets, spec.get("env", [])


def test_secrets_are_only_referenced_never_committed() -> None:
    objects = resources()
    assert not any(key.startswith("Secret/") for key in objects)
    config = objects["ConfigMap/blinkpos-config"]["data"]
    assert not SECRET_SETTINGS & set(config), "secrets belong in the Secret"
    for name in WORKLOADS:
        configmaps, secrets, env = env_sources(objects[name])
        assert configmaps == {"blinkpos-config"}
        for entry in env:
            assert "value" not in entry, f"{name}: {entry['name']} has a literal value"
            assert entry["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
        referenced = secrets | {entry["valueFrom"]["secretKeyRef"]["name"] for entry in env}
        assert referenced == {SECRET_NAME}, name
    for name in (APP, WORKER):
        assert env_sources(objects[name])[1] == {SECRET_NAME}, f"{name} reads every secret setting"
    (migrate_env,) = env_sources(objects[MIGRATE])[2]
    assert migrate_env["name"] == "DATABASE_URL", "the migration needs the database only"


def test_configmap_and_secret_together_provide_every_required_setting() -> None:
    from tests.test_deploy_files import required_variables

    config = resources()["ConfigMap/blinkpos-config"]["data"]
    assert set(config) <= set(service_config.VARIABLES) | {
        "GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_GRACEFUL_TIMEOUT",
    }, "a typo'd setting name is silently ignored"
    assert all(isinstance(value, str) for value in config.values())
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    kubernetes_section = docs.split("## Kubernetes", 1)[1].split("\n## ", 1)[0]
    for setting in required_variables() - set(config):
        assert setting in kubernetes_section, f"docs/deploy.md does not say to put {setting} in the Secret"
    assert f"create secret generic {SECRET_NAME}" in kubernetes_section


def test_network_policy_admits_only_the_service_ports() -> None:
    policy = resources()["NetworkPolicy/blinkpos"]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ingress_ports == {8080, 9100}
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 5432, 6379, 443}
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "blinkpos"}


def test_hpa_bounds_keep_postgres_connections_under_the_default_limit() -> None:
    objects = resources()
    hpa = objects["HorizontalPodAutoscaler/blinkpos-app"]["spec"]
    config = objects["ConfigMap/blinkpos-config"]["data"]
    assert hpa["minReplicas"] >= 2, "one pod is a single point of failure"
    assert objects["PodDisruptionBudget/blinkpos-app"]["spec"]["minAvailable"] < hpa["minReplicas"], (
        "a PDB as large as the deployment blocks every node drain"
    )
    pools = hpa["maxReplicas"] * int(config["GUNICORN_WORKERS"]) + objects[WORKER]["spec"]["replicas"]
    assert pools * int(config["PG_POOL_MAX_SIZE"]) <= 200, "see docs/deploy.md, Sizing"
    cpu_limit = container(objects[APP])["resources"]["limits"]["cpu"]
    assert int(config["GUNICORN_WORKERS"]) == 2 * int(cpu_limit) + 1
