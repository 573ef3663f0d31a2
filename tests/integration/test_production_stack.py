"""The production stack's Kafka, checked without an engine (issue 21; docs/security.md): three KRaft nodes
that keep every record twice before a write counts, SASL/SCRAM over TLS with ACLs; the topic init creates
every topic the services need with its cleanup policy, and gives every principal exactly its grants;
each service's environment and secrets make valid settings for its own principal; init.sh, run against
stand-ins for Kafka's command-line tools, does what the plan says and never puts a password on a
command line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import TOPICS
from services.runtime import topic_plan
from services.runtime.settings import PROJECT_ROOT, Settings
from tests.integration.test_deploy_files import STAGES, production  # noqa: F401 - the fixture
from tests.support.tls import make_secrets

KAFKA_DIR = PROJECT_ROOT / "deploy" / "kafka"
NODES = ("kafka-1", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_secrets(tmp_path_factory.mktemp("stack") / "secrets")


def test_three_kraft_nodes_keep_two_copies_before_a_write_counts(production: dict[str, Any]) -> None:  # noqa: F811
    services = production["services"]
    ids, published = set(), set()
    for node in NODES:
        env = services[node]["environment"]
        ids.add(str(env["KAFKA_NODE_ID"]))
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert (str(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]), str(env["KAFKA_MIN_INSYNC_REPLICAS"])) == ("3", "2")
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert protocols == {"CONTROLLER": "SSL", "INTERNAL": "SSL", "CLIENTS": "SASL_SSL", "EXTERNAL": "SASL_SSL"}
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        volumes = {v.split(":")[1]: v.split(":")[0] for v in services[node]["volumes"]}
        assert volumes[env["KAFKA_LOG_DIRS"]] in production["volumes"], f"{node}: log dir not on a named volume"
        (port,) = services[node]["ports"]
        host_port = str(port["published"]) if isinstance(port, dict) else port.split(":")[-2]
        external = next(a for a in env["KAFKA_ADVERTISED_LISTENERS"].split(",") if a.startswith("EXTERNAL://"))
        assert external.endswith(f":{host_port}"), f"{node} advertises {external} but is published on {host_port}"
        published.add(host_port)
    assert ids == {"1", "2", "3"} and len(published) == 3


def test_the_plan_files_are_the_code_s(production: dict[str, Any]) -> None:  # noqa: F811
    settings = Settings()
    assert (KAFKA_DIR / "topics.txt").read_text() == topic_plan.render_topics(settings), "python -m services.runtime.topic_plan deploy/kafka"
    assert (KAFKA_DIR / "acls.txt").read_text() == topic_plan.render_acls(settings), "python -m services.runtime.topic_plan deploy/kafka"
    init = production["services"]["kafka-init"]
    mounted = {v.split(":")[1] for v in init["volumes"]}
    assert {"/etc/ceasefire/topics.txt", "/etc/ceasefire/acls.txt", "/etc/ceasefire/init.sh"} <= mounted
    for stage in STAGES:
        assert init["environment"]["TOPIC_PARTITIONS"] == production["services"][stage]["environment"]["CEASEFIRE_PARTITIONS"]


def test_every_topic_is_created_with_its_cleanup_policy() -> None:
    settings = Settings()
    planned = {t.name: t.cleanup for t in topic_plan.topics(settings)}
    for spec in TOPICS.values():
        assert planned[settings.topic(spec.role)] == ("compact" if spec.compacted else "delete"), spec.role
    for access in topic_plan.STAGES.values():
        for table in access.tables:
            assert planned[topic_plan.changelog(settings, table)] == "compact", table


def test_every_principal_gets_exactly_its_grants() -> None:
    settings = Settings()
    grants = topic_plan.grants(settings)
    by_principal: dict[str, set[tuple[str, str, str]]] = {}
    for g in grants:
        by_principal.setdefault(g.principal, set()).add((g.resource, g.name, g.operation))
    assert set(by_principal) == set(topic_plan.PRINCIPALS)
    reports = settings.topic(TOPICS[next(iter(TOPICS))].role)
    assert by_principal["reporter"] == {("topic", reports, "Write"), ("topic", reports, "Describe")}
    subscribed = {settings.topic(r) for r in topic_plan.PEOPLE["subscriber"].reads}
    assert by_principal["subscriber"] == {("topic", t, op) for t in subscribed for op in ("Read", "Describe")}
    planned = {t.name for t in topic_plan.topics(settings)}
    written = {g.name for g in grants if g.operation == "Write"}
    read = {g.name for g in grants if g.operation == "Read" and g.resource == "topic"}
    assert planned == written, "a topic nobody may write, or a grant on a topic nobody creates"
    assert planned <= read, "a topic nobody may read"
    stages_only = {settings.topic(s.role) for s in TOPICS.values() if s.internal} | {
        t.name for t in topic_plan.topics(settings) if t.name.startswith(settings.app_id)}
    for g in grants:
        if g.name in stages_only:
            assert g.principal in topic_plan.STAGES, f"{g.principal} may {g.operation} {g.name}, a stage's own"


def test_each_service_s_environment_and_secrets_make_its_settings(production: dict[str, Any], secrets: Path,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    files = {name: secrets / Path(spec["file"]).relative_to(PROJECT_ROOT / "deploy" / "secrets")
             for name, spec in production["secrets"].items()}
    missing = sorted(str(f) for f in files.values() if not f.exists())
    assert missing == [], "make-secrets.sh does not write every secret the stack mounts"
    for stage in STAGES:
        service = production["services"][stage]
        mounted = tmp_path / stage
        mounted.mkdir()
        for secret in service["secrets"]:
            shutil.copy(files[secret["source"]], mounted / secret.get("target", secret["source"]))
        env = {k.removeprefix("CEASEFIRE_").lower(): v for k, v in service["environment"].items()
               if k.startswith("CEASEFIRE_") and k not in {"CEASEFIRE_SECRETS_DIR"}}
        env["kafka_ca_file"] = str(mounted / Path(env["kafka_ca_file"]).name)
        settings = Settings(**env, _secrets_dir=mounted)  # type: ignore[call-arg]
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_username == stage
        assert settings.kafka_password is not None
        assert settings.kafka_password.get_secret_value() == (secrets / "passwords" / stage).read_text()
        assert not settings.create_topics
        if stage == "archive":
            assert settings.archive_address.startswith("postgresql+psycopg://ceasefire:")


def test_init_runs_the_plan_and_never_puts_a_password_on_a_command_line(secrets: Path, tmp_path: Path) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool in ("kafka-configs.sh", "kafka-topics.sh", "kafka-acls.sh"):  # stand-ins: no Kafka runs here
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        (bin_dir / tool).chmod(0o755)
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    for principal in topic_plan.PRINCIPALS:
        shutil.copy(secrets / "passwords" / principal, run_secrets / f"kafka_password_{principal}")
    done = subprocess.run(  # noqa: S603
        ["bash", str(KAFKA_DIR / "init.sh")], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(bin_dir), "PLAN_DIR": str(KAFKA_DIR),
             "SECRETS_DIR": str(run_secrets), "TOPIC_PARTITIONS": "8", "ADMIN_CONFIG": "/dev/null"},
    )
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    settings = Settings()
    creates = {line.split("--topic ")[1].split()[0]: line for line in lines if line.startswith("kafka-topics.sh")}
    for topic in topic_plan.topics(settings):
        line = creates.pop(topic.name)
        assert f"--partitions {topic.partitions or 8} " in line and "--replication-factor 3 " in line
        assert f"cleanup.policy={topic.cleanup}" in line and "min.insync.replicas=2" in line
    assert creates == {}
    scram = [line for line in lines if line.startswith("kafka-configs.sh")]
    assert sorted(line.split("--entity-name ")[1].split()[0] for line in scram) == sorted(topic_plan.PRINCIPALS)
    assert all("--add-config-file " in line for line in scram)
    bound = {line.split("User:")[1].split()[0] for line in lines if line.startswith("kafka-acls.sh")}
    assert bound == set(topic_plan.PRINCIPALS)
    operations = sum(line.count("--operation ") for line in lines if line.startswith("kafka-acls.sh"))
    assert operations == len(topic_plan.grants(settings))
    for principal in topic_plan.PRINCIPALS:
        assert (secrets / "passwords" / principal).read_text() not in calls.read_text()


def test_the_acl_table_in_the_docs_is_the_plan() -> None:
    text = (PROJECT_ROOT / "docs" / "security.md").read_text()
    table = text[text.index("| principal | reads (and describes) |"):]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| `")]
    documented = {}
    for row in rows:
        principal, reads, writes, groups = (cell.strip() for cell in row.strip("|").split("|"))
        names = [{n.strip().strip("`") for n in cell.split(",")} - {"—"} for cell in (reads, writes, groups)]
        documented[principal.strip("`")] = tuple(names)
    grants = topic_plan.grants(Settings())
    planned = {
        p: tuple({g.name for g in grants if g.principal == p and g.resource == res and g.operation == op}
                 for res, op in (("topic", "Read"), ("topic", "Write"), ("group", "Read")))
        for p in topic_plan.PRINCIPALS
    }
    assert documented == planned
