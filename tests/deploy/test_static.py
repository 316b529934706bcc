"""Static checks of deploy/: Envoy accepts its configs, kustomize renders every overlay and
the Kubernetes schemas accept it, hadolint passes both Dockerfiles, and the files agree with
each other and with the SDK (one Envoy config, one route header, drain grace < stop grace).
Every tool comes from pip (the test extra), so all of this runs in CI."""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import subprocess

import gradserve as gs
import pytest
import yaml
from gradserve import _client

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENVOY_CONFIGS = ["envoy.yaml", "envoy-ring-hash.yaml"]
KUSTOMIZATIONS = ["base", "overlays/gpu", "overlays/gateway-api"]
KUBERNETES = "1.30.0"  # the oldest release the manifests are written for
SERVICE = "gradserve.v1.GradserveService"


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


# -- Envoy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENVOY_CONFIGS)
def test_envoy_validates_the_config(name, helpers):
    out = run([helpers.tool("envoy"), "--mode", "validate", "-c", str(DEPLOY / "envoy" / name)])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "OK" in out.stdout + out.stderr


def _envoy(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "envoy" / name).read_text())


def _hcm(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


def test_the_fallback_differs_from_envoy_yaml_only_in_how_it_pins():
    pinned, hashed = _envoy("envoy.yaml"), _envoy("envoy-ring-hash.yaml")
    filters = _hcm(pinned)["http_filters"]
    assert filters[0]["name"] == "envoy.filters.http.stateful_session"
    assert filters[0]["typed_config"]["strict"] is True
    del filters[0]
    for route in _hcm(hashed)["route_config"]["virtual_hosts"][0]["routes"]:
        assert route["route"].pop("hash_policy") == [{"header": {"header_name": "x-session-id"}}]
    policies = [c["load_balancing_policy"]["policies"][0]["typed_extension_config"]["name"]
                for c in (pinned["static_resources"]["clusters"][0],
                          hashed["static_resources"]["clusters"][0])]
    assert policies == ["envoy.load_balancing_policies.least_request",
                        "envoy.load_balancing_policies.ring_hash"]
    for config in (pinned, hashed):
        del config["static_resources"]["clusters"][0]["load_balancing_policy"]
    assert pinned == hashed


def test_long_streams_and_dead_replicas_are_configured_for():
    config = _envoy("envoy.yaml")
    hcm = _hcm(config)
    create, other = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert create["match"] == {"path": "/gradserve.v1.GradserveService/CreateSession"}
    assert create["route"]["timeout"] == other["route"]["timeout"] == "0s"
    assert hcm["stream_idle_timeout"] == other["route"]["idle_timeout"] == "3600s"
    # only a new session may be retried on another replica; a session's calls never move
    assert "retry_policy" in create["route"] and "retry_policy" not in other["route"]
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"] == {"service_name": SERVICE}
    assert check["no_traffic_interval"] == check["interval"]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"] == {"address": "gradserve", "port_value": 50051}


def test_one_route_header_everywhere(rendered):
    state = _hcm(_envoy("envoy.yaml"))["http_filters"][0]["typed_config"]["session_state"]
    assert state["name"] == "envoy.http.stateful_session.header"
    names = {
        "envoy.yaml": state["typed_config"]["name"],
        "client": _client.ROUTE_HEADER,
        "gs.connect": inspect.signature(gs.connect).parameters["route_header"].default,
        "gateway-api": rendered("overlays/gateway-api")["GRPCRoute/gradserve"]["spec"][
            "rules"][0]["sessionPersistence"]["sessionName"],
    }
    assert set(names.values()) == {"x-gradserve-route"}, names


# -- Kubernetes -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kustomize(helpers):
    """kustomize(path) -> (rendered text, {"Kind/name": object}); generated names lose their
    hash suffix. Rendered once per path."""
    cache: dict[str, tuple[str, dict]] = {}

    def render(path: str) -> tuple[str, dict]:
        if path not in cache:
            out = run([helpers.tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / path)],
                      env={**os.environ, "KUBECONFIG": os.devnull})
            assert out.returncode == 0, out.stderr
            docs = [d for d in yaml.safe_load_all(out.stdout) if d]
            cache[path] = (out.stdout, {
                f"{d['kind']}/{re.sub(r'-[a-z0-9]{10}$', '', d['metadata']['name'])}": d
                for d in docs})
        return cache[path]

    return render


@pytest.fixture(scope="module")
def rendered(kustomize):
    return lambda path: kustomize(path)[1]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomize_renders_and_the_schemas_accept_it(path, helpers, kustomize, tmp_path):
    text, _ = kustomize(path)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(text)
    out = run([helpers.tool("kubernetes-validate"), "--strict", "-k", KUBERNETES,
               str(rendered)])
    assert out.returncode == 0, out.stdout + out.stderr


def _pod(objects: dict) -> dict:
    return objects["StatefulSet/gradserve"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_replicas_probe_drain_and_stop_in_time(path, rendered):
    objects = rendered(path)
    pod = _pod(objects)
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["GRADSERVE_DRAIN_GRACE"])
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": SERVICE}
    assert container["livenessProbe"]["grpc"] == {"port": 50051}
    assert "kill -TERM 1" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = objects["Service/gradserve"]["spec"]
    assert service["clusterIP"] == "None"
    assert objects["PodDisruptionBudget/gradserve"]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("path", ["base", "overlays/gpu"])
def test_envoy_runs_the_committed_config(path, rendered):
    objects = rendered(path)
    assert objects["ConfigMap/gradserve-envoy"]["data"] == {
        "envoy.yaml": (DEPLOY / "envoy" / "envoy.yaml").read_text()}
    pod = objects["Deployment/gradserve-envoy"]["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"].startswith("gradserve-envoy-")  # the generated one


def test_the_overlays(rendered):
    assert rendered("base")["HorizontalPodAutoscaler/gradserve"]["spec"]["metrics"][0][
        "resource"]["name"] == "cpu"
    gpu = rendered("overlays/gpu")
    (container,) = _pod(gpu)["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].startswith("gradserve-gpu:")
    assert "auto" in container["args"]
    assert "HorizontalPodAutoscaler/gradserve" not in gpu
    gateway = rendered("overlays/gateway-api")
    assert "Deployment/gradserve-envoy" not in gateway
    assert gateway["GRPCRoute/gradserve"]["spec"]["rules"][0]["sessionPersistence"][
        "type"] == "Header"


# -- images and compose -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_hadolint_passes(name, helpers):
    out = run([helpers.tool("hadolint"), str(DEPLOY / name)])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_the_final_stage_runs_the_server_unprivileged_without_build_tools(name):
    text = (DEPLOY / name).read_text()
    assert re.search(r"^ARG BASE=\S+$", text, re.M)
    final = re.split(r"^FROM ", text, flags=re.M)[-1]
    assert final.startswith("${BASE}\n")
    assert not re.search(r"gcc|g\+\+|clang|build-essential|-dev\b|\bpip\b", final)
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert 'CMD ["gradserve", "health"]' in final
    assert re.search(r'^CMD \["serve", "--host", "0\.0\.0\.0"', final, re.M)


def test_compose_runs_three_health_checked_replicas_behind_the_committed_envoy():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    replicas, envoy = compose["gradserve"], compose["envoy"]
    assert replicas["deploy"]["replicas"] == 3
    assert replicas["healthcheck"]["test"] == ["CMD", "gradserve", "health"]
    grace = float(replicas["environment"]["GRADSERVE_DRAIN_GRACE"])
    assert float(replicas["stop_grace_period"].rstrip("s")) > grace
    assert (DEPLOY / replicas["build"]["context"] / replicas["build"]["dockerfile"]).is_file()
    assert "./envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert envoy["depends_on"]["gradserve"]["condition"] == "service_healthy"
    assert all(p.startswith("127.0.0.1:") for p in envoy["ports"])
