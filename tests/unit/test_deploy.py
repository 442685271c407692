"""The deployment files: Kubernetes manifests that parse, whose probes, ports and volumes match
what the gateway really serves, and a Dockerfile that stays hardened. (No cluster and no
Docker daemon here: this checks the files against the code, not a running deployment.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from starlette.routing import Route

from graftql.config import parse_config
from graftql.server import create_app

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            assert {"apiVersion", "kind"} <= set(document), path
            found[document["kind"]] = document
    return found


def container() -> dict[str, Any]:
    [only] = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def gateway_yaml(tmp_path: Path) -> Any:
    """The ConfigMap's gateway.yaml, validated, with its secret files made up in tmp_path."""
    text = manifests()["ConfigMap"]["data"]["gateway.yaml"]
    for name in set(re.findall(r"file:/run/secrets/graftql/([\w.-]+)", text)):
        (tmp_path / name).write_text("made-up-secret")
    text = text.replace("file:/run/secrets/graftql/", f"file:{tmp_path}/")
    return parse_config(yaml.safe_load(text))


def test_every_manifest_parses_and_kustomization_lists_them_all() -> None:
    found = manifests()
    assert {
        "Kustomization",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= set(found)
    listed = set(found["Kustomization"]["resources"])
    files = {path.name for path in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files


def test_probes_use_the_gateways_real_paths_on_the_container_port(tmp_path: Path) -> None:
    config = gateway_yaml(tmp_path)
    app = create_app(config)
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    spec = container()
    [port] = spec["ports"]
    assert port["containerPort"] == config.server.port == 8000
    assert config.server.host == "0.0.0.0"  # noqa: S104 - a pod listens on its own address
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    probed = {spec[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    assert probed <= paths
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in paths
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    # The Dockerfile listens and checks health on the same port.
    docker = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {port['containerPort']}" in docker
    assert f'--port", "{port["containerPort"]}"' in docker
    assert f"127.0.0.1:{port['containerPort']}/healthz" in docker


def test_service_and_autoscaler_point_at_the_deployment() -> None:
    found = manifests()
    deployment = found["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = found["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )


def test_read_only_root_with_writable_emptydirs_for_tmp_and_metrics() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    spec = container()
    security = spec["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in spec["volumeMounts"]}
    env = {item["name"]: item.get("value") for item in spec["env"]}
    for writable in (env["PROMETHEUS_MULTIPROC_DIR"], "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]], writable
    # The configuration and the secrets are whole-directory mounts (updated in place).
    assert "configMap" in volumes[mounts["/etc/graftql"]]
    assert "secret" in volumes[mounts["/run/secrets/graftql"]]
    assert all("subPath" not in mount for mount in spec["volumeMounts"])


def test_the_configmaps_secrets_are_references_to_the_mounted_secret() -> None:
    text = manifests()["ConfigMap"]["data"]["gateway.yaml"]
    references = re.findall(r"file:(\S+)", text)
    assert references and all(ref.startswith("/run/secrets/graftql/") for ref in references)
    assert (
        manifests()["Deployment"]["spec"]["template"]["spec"]["volumes"][1]["secret"]["secretName"]
        == "graftql-upstreams"
    )


def test_dockerfile_final_stage_is_hardened() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", docker, flags=re.MULTILINE)[1:]
    assert len(stages) == 2 and stages[0].startswith("python:3.11-slim AS build")
    final = stages[1]
    assert "COPY --from=build /opt/graftql /opt/graftql" in final
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert "HEALTHCHECK" in final and "PYTHONDONTWRITEBYTECODE=1" in final
    # No build tools: no compiler or package installs, the installers removed.
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final, tool
    assert "pip uninstall -y pip setuptools wheel" in final
    assert "compileall" in stages[0]
