"""Static checks of deploy/: files parse, and agree with the code and with each other."""
from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from agents import metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PORT = 6066

KNOWN_SETTINGS = {
    "BROKER", "DATA_DIR", "TOP_N", "WINDOW_DAYS", "MIN_ALLEGATIONS", "HARM_TABLE", "CLOCK",
    "WEB_PORT", "WEB_HOST", "API_TOKEN", "PARTITIONS", "TICK_SECONDS",
}
ALERTS = {
    "HarmrankWorkerDown", "HarmrankLagGrowing", "HarmrankDeadLettersSpiking",
    "HarmrankClockStalled", "HarmrankNotReady", "HarmrankStageFailing", "HarmrankAuditFailing",
}

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path: Path) -> list:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def load(path: Path):
    (doc,) = load_all(path)
    return doc


def k8s_docs() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in load_all(p)]


def k8s_kind(kind: str) -> list[dict]:
    return [d for d in k8s_docs() if d.get("kind") == kind]


def compose() -> dict:
    return load(DEPLOY / "docker-compose.yml")


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "harmrank.json").read_text(encoding="utf-8"))


def alert_rules(groups: list) -> list[dict]:
    return [r for g in groups for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dashboard()["panels"])
    return out


def metric_tokens(expr: str) -> set[str]:
    names = set()
    for tok in re.findall(r"harmrank_[a-z_]+", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            base = tok[: -len(suffix)]
            if tok.endswith(suffix) and base in metrics.METRIC_NAMES:
                tok = base
        names.add(tok)
    return names


# --- parsing ----------------------------------------------------------------------------


def test_there_are_yaml_files():
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {
        "docker-compose.yml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/harmrank.yml",
        "k8s/statefulset.yaml",
        "k8s/service.yaml",
        "k8s/configmap.yaml",
        "k8s/secret.example.yaml",
        "k8s/servicemonitor.yaml",
        "k8s/prometheusrule.yaml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path):
    assert load_all(path)


def test_dashboard_json_parses_and_has_the_panels():
    d = dashboard()
    titles = " | ".join(p["title"].lower() for p in d["panels"])
    for word in ("throughput", "lag by stage", "dead letters", "entries / exits", "threshold",
                 "clock", "latency", "suspects", "ready"):
        assert word in titles, word
    exprs = "\n".join(dashboard_exprs())
    assert "time() - harmrank_clock_as_of_seconds" in exprs
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))


def test_k8s_manifests_have_no_namespace():
    for d in k8s_docs():
        assert "namespace" not in d.get("metadata", {}), d["metadata"]


# --- metric names ----------------------------------------------------------------------


def test_dashboard_metric_names_exist():
    used = set().union(*(metric_tokens(e) for e in dashboard_exprs()))
    assert used, "the dashboard uses no harmrank metric"
    assert used <= set(metrics.METRIC_NAMES), used - set(metrics.METRIC_NAMES)


def test_alert_metric_names_exist():
    rules = alert_rules(load(DEPLOY / "prometheus" / "alerts.yml")["groups"])
    used = set().union(*(metric_tokens(r["expr"]) for r in rules))
    assert used <= set(metrics.METRIC_NAMES), used - set(metrics.METRIC_NAMES)


def test_the_dashboard_covers_most_metrics():
    used = set().union(*(metric_tokens(e) for e in dashboard_exprs()))
    assert set(metrics.METRIC_NAMES) - used == set()


# --- alerts -----------------------------------------------------------------------------


def test_alert_rules_are_complete():
    rules = alert_rules(load(DEPLOY / "prometheus" / "alerts.yml")["groups"])
    by_name = {r["alert"]: r for r in rules}
    assert set(by_name) == ALERTS
    assert len(rules) == len(by_name)
    for r in rules:
        assert r["for"], r["alert"]
        assert r["annotations"]["summary"].strip(), r["alert"]
        assert len(r["annotations"]["description"]) > 80, r["alert"]
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
    assert by_name["HarmrankWorkerDown"]["for"] == "2m"
    assert "up{" in by_name["HarmrankWorkerDown"]["expr"] and "== 0" in by_name["HarmrankWorkerDown"]["expr"]
    assert by_name["HarmrankLagGrowing"]["for"] == "10m"
    assert "> 1000" in by_name["HarmrankLagGrowing"]["expr"] and "deriv(" in by_name["HarmrankLagGrowing"]["expr"]
    assert by_name["HarmrankDeadLettersSpiking"]["for"] == "5m"
    assert "0.05" in by_name["HarmrankDeadLettersSpiking"]["expr"]
    assert by_name["HarmrankClockStalled"]["for"] == "5m"
    assert "time() - harmrank_clock_as_of_seconds > 300" in by_name["HarmrankClockStalled"]["expr"]
    assert by_name["HarmrankNotReady"]["for"] == "10m"
    assert "harmrank_worker_ready == 0" in by_name["HarmrankNotReady"]["expr"]


def test_prometheusrule_carries_the_same_rules_as_alerts_yml():
    (rule,) = k8s_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == load(DEPLOY / "prometheus" / "alerts.yml")["groups"]


def test_prometheus_config_loads_the_rules_and_scrapes_both_workers():
    cfg = load(DEPLOY / "prometheus" / "prometheus.yml")
    assert any(f.endswith("alerts.yml") for f in cfg["rule_files"])
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "harmrank"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == ["worker-1:%d" % PORT, "worker-2:%d" % PORT]
    # the compose file mounts the rule file where prometheus.yml says it is
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert any(m.split(":")[1] in cfg["rule_files"] for m in mounts if "alerts.yml" in m)


def test_servicemonitor_selects_the_api_service():
    (sm,) = k8s_kind("ServiceMonitor")
    services = {s["metadata"]["name"]: s for s in k8s_kind("Service")}
    sel = sm["spec"]["selector"]["matchLabels"]
    matched = [n for n, s in services.items() if sel.items() <= s["metadata"]["labels"].items()]
    # job label = service name, which the alert rules select (up{job="harmrank"})
    assert matched == ["harmrank"]
    port_names = {p["name"] for p in services["harmrank"]["spec"]["ports"]}
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= port_names
    assert all(e.get("path", "/metrics") == "/metrics" for e in sm["spec"]["endpoints"])


# --- settings ---------------------------------------------------------------------------


def test_known_settings_are_settings_fields():
    from agents.settings import Settings

    assert {f.name.upper() for f in fields(Settings)} >= KNOWN_SETTINGS


def _harmrank_vars(text: str) -> set[str]:
    return set(re.findall(r"HARMRANK_([A-Z_]+)", text))


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "Dockerfile", DEPLOY / "docker-compose.yml", DEPLOY / "prometheus" / "alerts.yml"]
    + sorted(K8S.glob("*.yaml")),
    ids=lambda p: p.relative_to(DEPLOY).as_posix(),
)
def test_every_harmrank_variable_is_a_known_setting(path):
    used = _harmrank_vars(path.read_text(encoding="utf-8"))
    assert used <= KNOWN_SETTINGS, used - KNOWN_SETTINGS


def test_configmap_values_are_valid_settings():
    from agents.settings import Settings

    (cm,) = k8s_kind("ConfigMap")
    data = cm["data"]
    assert data["HARMRANK_CLOCK"] == "wall"
    assert data["HARMRANK_TOP_N"] == "100"
    assert data["HARMRANK_WINDOW_DAYS"] == "365"
    assert data["HARMRANK_MIN_ALLEGATIONS"] == "2"
    assert data["HARMRANK_PARTITIONS"] == "4"
    assert data["HARMRANK_WEB_HOST"] == "0.0.0.0"
    assert all(isinstance(v, str) for v in data.values())
    Settings.from_env(data)  # raises on a bad value


def test_compose_workers():
    svc = compose()["services"]
    from agents.settings import Settings

    volumes = set()
    for name, host_port in (("worker-1", 6066), ("worker-2", 6067)):
        w = svc[name]
        env = w["environment"]
        assert env["HARMRANK_BROKER"] == "kafka://kafka:9092"
        assert env["HARMRANK_API_TOKEN"] == "${HARMRANK_API_TOKEN:?set a token}"
        assert env["HARMRANK_CLOCK"] == "wall"
        assert w["build"]["dockerfile"] == "deploy/Dockerfile"
        assert w["build"]["context"] == ".."
        assert w["ports"] == ["127.0.0.1:%d:%d" % (host_port, PORT)]
        (vol,) = w["volumes"]
        src, dst = vol.split(":")[:2]
        assert dst == "/data"
        volumes.add(src)
        Settings.from_env({k: str(v) for k, v in env.items() if k != "HARMRANK_API_TOKEN"})
    assert len(volumes) == 2 and volumes <= set(compose()["volumes"])


def test_compose_kafka_and_topics():
    svc = compose()["services"]
    k = svc["kafka"]
    assert k["image"] == "apache/kafka:3.8.0"
    env = k["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    for port in (p for p in k.get("ports", [])):
        assert port.startswith("127.0.0.1:")
    init = svc["kafka-init"]
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    for topic, parts in (("crime-reports", 4), ("harm-ranking", 1), ("crime-reports.dlq", 1)):
        assert re.search(r"--topic %s --partitions %d\b" % (re.escape(topic), parts), script), topic
    assert "kafka-topics.sh" in script
    for name in ("worker-1", "worker-2"):
        assert svc[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_compose_publishes_only_on_localhost():
    for name, s in compose()["services"].items():
        for p in s.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), (name, p)


def test_compose_grafana_mounts_provisioning():
    g = compose()["services"]["grafana"]
    mounts = " ".join(g["volumes"])
    assert "./grafana/provisioning:/etc/grafana/provisioning" in mounts
    prov = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "harmrank.yml")
    path = prov["providers"][0]["options"]["path"]
    assert "./grafana/dashboards:%s" % path in mounts
    ds = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uids = {d["uid"] for d in ds["datasources"]}
    for p in dashboard()["panels"]:
        assert p["datasource"]["uid"] in uids


# --- ports ------------------------------------------------------------------------------


def test_dockerfile():
    text = dockerfile()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    assert re.search(r"^EXPOSE\s+%d\s*$" % PORT, text, re.M)
    assert re.search(r"HARMRANK_WEB_PORT=%d\b" % PORT, text)
    assert "HARMRANK_DATA_DIR=/data" in text and "HARMRANK_WEB_HOST=0.0.0.0" in text
    assert re.search(r"^VOLUME\s+(/data|\[\"/data\"\])\s*$", text, re.M)
    assert re.search(r"^ENTRYPOINT\s+\[\"harmrank\"\]\s*$", text, re.M)
    assert re.search(r"^CMD\s+\[\"worker\"\]\s*$", text, re.M)
    assert re.search(r"pip install[^\n]*\s\.(\s|$)", text), "the image must install the project"
    assert re.search(r"^COPY\s+pyproject\.toml", text, re.M)
    health = re.search(r"^HEALTHCHECK.*?(?=^\S)", text, re.M | re.S).group(0)
    assert "/healthz" in health and "urllib" in health
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("root", "0")


def test_dockerfile_copies_every_package():
    import tomllib

    pkgs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    text = dockerfile()
    for pkg in {p.split(".")[0] for p in pkgs}:  # a sub-package comes with its package's directory
        assert re.search(r"^COPY\s+%s\s" % pkg, text, re.M) or re.search(r"^COPY\s+\.\s", text, re.M), pkg


def test_k8s_ports_and_probes():
    (sts,) = k8s_kind("StatefulSet")
    spec = sts["spec"]
    assert sts["metadata"]["name"] == "harmrank-worker"
    assert spec["replicas"] == 2
    (c,) = spec["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert PORT in named.values()

    def port_of(probe):
        p = probe["httpGet"]["port"]
        return named.get(p, p)

    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert port_of(c["livenessProbe"]) == PORT and port_of(c["readinessProbe"]) == PORT
    ann = spec["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(PORT)
    assert ann["prometheus.io/path"] == "/metrics"
    # /data on a 10Gi claim
    (vct,) = spec["volumeClaimTemplates"]
    assert vct["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert {"name": vct["metadata"]["name"], "mountPath": "/data"}.items() <= {
        m["mountPath"]: m for m in c["volumeMounts"]
    }["/data"].items()
    # settings: ConfigMap + the token from the Secret
    (cm,) = k8s_kind("ConfigMap")
    assert {"configMapRef": {"name": cm["metadata"]["name"]}} in c["envFrom"]
    env = {e["name"]: e for e in c.get("env", [])}
    ref = env["HARMRANK_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "harmrank-api-token", "key": "token"}
    (secret,) = k8s_kind("Secret")
    assert secret["metadata"]["name"] == "harmrank-api-token" and "token" in secret["stringData"]
    assert cm["data"].get("HARMRANK_WEB_PORT", str(PORT)) == str(PORT)
    # security and resources
    psc = spec["template"]["spec"]["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"] and c["resources"]["limits"]


def test_k8s_services():
    services = {s["metadata"]["name"]: s for s in k8s_kind("Service")}
    (sts,) = k8s_kind("StatefulSet")
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    cluster_ip = [s for s in services.values() if s["spec"].get("clusterIP") != "None"]
    assert len(cluster_ip) == 1 and cluster_ip[0]["spec"].get("type", "ClusterIP") == "ClusterIP"
    for s in services.values():
        assert s["spec"]["selector"].items() <= pod_labels.items()
        for p in s["spec"]["ports"]:
            assert p["port"] == PORT and p.get("targetPort", PORT) in (PORT, "http")
