"""The Kubernetes manifests keep Quorum's invariants: durable NATS (R3, fsync always),
probes on real routes, only settings that exist, and one snapshotter per snapshot root."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml

from feed.app import health, ready
from ledger.streams import MAX_MESSAGE_BYTES
from quorum.cli.ledger_history import register as register_history
from recipes.settings import SETTINGS

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
KNOWN_ENV = {setting.env for setting in SETTINGS}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = _documents()


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def _nats_conf() -> str:
    return str(_one("ConfigMap", "quorum-nats-config")["data"]["nats.conf"])


def _block(conf: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s*\{{(.*?)^\s*\}}", conf, re.S | re.M)
    assert match, f"nats.conf has no {name} {{ … }} block"
    return match.group(1)


def _settings_in(conf: str) -> dict[str, str]:
    """`key: value` lines of a nats.conf block, comments dropped."""
    pairs = {}
    for line in conf.splitlines():
        line = line.split("#", 1)[0].strip()
        key, sep, value = line.partition(":")
        if sep and value.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def test_every_manifest_parses_and_is_named() -> None:
    assert DOCS, "no manifests in deploy/k8s"
    for filename, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind"), f"{filename}: apiVersion/kind missing"
        if doc["kind"] != "Kustomization":
            assert doc["metadata"].get("name"), f"{filename}: a {doc['kind']} without a name"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, f"kustomization.yaml resources differ from the files: {listed ^ present}"


def test_nats_fsyncs_every_write() -> None:
    jetstream = _settings_in(_block(_nats_conf(), "jetstream"))
    assert jetstream.get("sync_interval") == "always", (
        "nats.conf must set jetstream { sync_interval: always }"
    )


def test_nats_accepts_whole_ledger_batches() -> None:
    max_payload = int(_settings_in(_nats_conf())["max_payload"])
    assert max_payload >= MAX_MESSAGE_BYTES, "max_payload is below the EVENTS stream's max message size"


def test_nats_runs_three_servers_that_route_to_each_other() -> None:
    statefulset = _one("StatefulSet", "quorum-nats")
    assert statefulset["spec"]["replicas"] == 3
    headless = _one("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    routes = re.findall(r"nats://([\w.-]+):6222", _block(_nats_conf(), "cluster"))
    expected = {f"quorum-nats-{n}.{headless['metadata']['name']}" for n in range(3)}
    assert set(routes) == expected
    (container,) = _containers(statefulset)
    mounted = {m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert "data" in mounted & claims, "JetStream's store must be on a persistent volume"
    assert "/data/jetstream" in _nats_conf()


def test_feed_runs_granian_with_the_configured_workers() -> None:
    (container,) = _containers(_one("Deployment", "quorum-feed"))
    command = container["command"]
    assert shlex.join(command) == (
        "granian --interface asgi --factory feed.app:create_app --host 0.0.0.0 --port 8080 --workers 2"
    )
    config = _one("ConfigMap", "quorum-feed-config")["data"]
    assert config["QUORUM_WORKERS"] == command[command.index("--workers") + 1]
    assert config["QUORUM_PORT"] == command[command.index("--port") + 1]
    assert {p["containerPort"] for p in container["ports"]} == {8080}


def test_feed_probes_point_at_ready_and_health() -> None:
    (container,) = _containers(_one("Deployment", "quorum-feed"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    # The probed paths are real routes of the feed app.
    assert "/ready" in ready.paths and "/health" in health.paths
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("name", ["quorum-feed", "quorum-snapshotter"])
def test_every_quorum_env_var_is_a_setting(name: str) -> None:
    deployment = _one("Deployment", name)
    used: set[str] = set()
    for container in _containers(deployment):
        used |= {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                used |= set(_one("ConfigMap", source["configMapRef"]["name"])["data"])
            else:  # Secrets are created by hand (README.md) and optional here
                assert source["secretRef"].get("optional") is True, f"{name}: a required Secret in envFrom"
    quorum_vars = {v for v in used if v.startswith("QUORUM_")}
    assert quorum_vars, f"{name} sets no QUORUM_* variables"
    unknown = quorum_vars - KNOWN_ENV
    assert not unknown, f"{name} sets {sorted(unknown)}, which recipes.settings.SETTINGS does not know"


def test_feed_gets_nats_dataset_and_secret() -> None:
    (container,) = _containers(_one("Deployment", "quorum-feed"))
    config = _one("ConfigMap", "quorum-feed-config")["data"]
    assert config["QUORUM_NATS_URL"].startswith("nats://quorum-nats:")
    assert config["QUORUM_DATASET"]
    env = {e["name"]: e for e in container["env"]}
    assert env["QUORUM_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "quorum-secrets"
    assert "QUORUM_SECRET" not in config, "the token secret belongs in a Secret, not a ConfigMap"


def test_hpa_scales_the_feed_on_cpu() -> None:
    hpa = _one("HorizontalPodAutoscaler", "quorum-feed")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "quorum-feed",
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2
    (container,) = _containers(_one("Deployment", "quorum-feed"))
    assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"


def test_feed_service_reaches_the_feed_pods() -> None:
    service = _one("Service", "quorum-feed")
    deployment = _one("Deployment", "quorum-feed")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = _containers(deployment)
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps and `env` values."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(_one("ConfigMap", source["configMapRef"]["name"])["data"])
    values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return values


def test_exactly_one_snapshotter_writes_a_snapshot_root() -> None:
    deployment = _one("Deployment", "quorum-snapshotter")
    # The manifest has one writer: no second replica, and no rolling update that would
    # run the old and the new pod side by side.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(
        d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == "quorum-snapshotter"
        for _, d in DOCS
    )


def test_snapshotter_follows_the_ledger_with_a_real_command() -> None:
    (container,) = _containers(_one("Deployment", "quorum-snapshotter"))
    command = container["command"]
    assert command[:3] == ["ledger", "snapshot", "--follow"]
    assert float(command[command.index("--interval") + 1]) > 0
    # Catch-up workers each buffer a file of rows (~0.5 GB): their number fits the limit.
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") and int(command[command.index("--workers") + 1]) * 0.5 < float(limit[:-2])
    # Every option it passes is one `ledger snapshot` has.
    history = typer.Typer()
    register_history(history)
    snapshot = typer.main.get_command(history).commands["snapshot"]  # type: ignore[attr-defined]
    options = {opt for param in snapshot.params for opt in param.opts}
    passed = {arg for arg in command[3:] if arg.startswith("--")}
    assert passed <= options, f"ledger snapshot has no {sorted(passed - options)}"


def test_snapshotter_writes_where_the_settings_say_and_reads_the_feeds_nats() -> None:
    (container,) = _containers(_one("Deployment", "quorum-snapshotter"))
    env = _env(container)
    location = env["QUORUM_SNAPSHOT_DIR"]
    assert "://" in location or location.startswith("/"), "a URI, or an absolute path on a volume"
    if location.startswith("/"):
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert any(location.startswith(m.rstrip("/") + "/") or location == m for m in mounts), (
            f"{location} is on no mounted volume"
        )
    (feed,) = _containers(_one("Deployment", "quorum-feed"))
    assert env["QUORUM_NATS_URL"] == _env(feed)["QUORUM_NATS_URL"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]


def test_snapshotter_has_time_to_commit_on_sigterm() -> None:
    spec = _one("Deployment", "quorum-snapshotter")["spec"]["template"]["spec"]
    # SIGTERM makes it commit what it buffered (to an object store, maybe slowly).
    assert spec.get("terminationGracePeriodSeconds", 30) >= 60


def test_the_runner_runs_a_recipe_without_feed_workers() -> None:
    deployment = _one("Deployment", "quorum-runner")
    assert deployment["spec"]["replicas"] == 1  # a second one would wait for the leader lock
    (container,) = _containers(deployment)
    command = container["command"]
    assert command[0] == "quorum" and "--no-feed" in command
    from recipes.catalog import get_recipe, load

    load()
    spec = get_recipe(command[1])  # a recipe Quorum has
    positional = [a for a in spec.args if a.kind == "positional" and a.required]
    assert len([c for c in command[2:] if not c.startswith("-")]) >= len(positional)
    (feed,) = _containers(_one("Deployment", "quorum-feed"))
    assert _env(container)["QUORUM_NATS_URL"] == _env(feed)["QUORUM_NATS_URL"]
    source = next(c for c in command if c.endswith(".jsonl"))
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert any(source.startswith(m.rstrip("/") + "/") for m in mounts), f"{source} is on no mounted volume"
