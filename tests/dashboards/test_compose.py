"""docker-compose.yml is valid for Debian's docker-compose 1.29 (no engine runs here), pins its images, reads
Grafana's admin password from the environment, and gives the exporter and vLLM their GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.dashboards.panel_queries import ROOT

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
PROFILES = ("single", "disaggregated", "locust")


def compose(*args: str, password: str | None = "test-password") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    if password is not None:
        env["GRAFANA_ADMIN_PASSWORD"] = password
    return subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=ROOT)


def resolved(*profiles: str) -> dict:
    flags = [arg for p in profiles for arg in ("--profile", p)]
    done = compose(*flags, "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_config_is_valid_without_and_with_every_profile():
    assert compose("config", "-q").returncode == 0
    flags = [arg for p in PROFILES for arg in ("--profile", p)]
    done = compose(*flags, "config", "-q")
    assert done.returncode == 0, done.stderr


def test_services_and_profiles():
    """(docker-compose 1.29's `config` lists every service whatever the profile, so read the profiles key.)"""
    profiles = {name: tuple(s.get("profiles", ())) for name, s in resolved(*PROFILES)["services"].items()}
    assert profiles == {"prometheus": (), "grafana": (), "exporter": (), "vllm": ("single",),
                        "vllm-prefill": ("disaggregated",), "vllm-decode": ("disaggregated",),
                        "proxy": ("disaggregated",), "locust-master": ("locust",), "locust-worker": ("locust",)}


def test_images_are_pinned_by_tag():
    for name, service in resolved(*PROFILES)["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image}"


def test_grafana_password_comes_from_the_environment():
    grafana = resolved()["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test-password"
    done = compose("config", "-q", password=None)
    assert done.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in done.stderr


def test_gpu_services_reserve_gpus():
    services = resolved(*PROFILES)["services"]
    for name in ("exporter", "vllm", "vllm-prefill", "vllm-decode"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia", name
    # The disaggregated pair sits on the GPUs that prometheus.yml maps to roles prefill (0) and decode (1).
    assert services["vllm-prefill"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["0"]
    assert services["vllm-decode"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["1"]


def test_host_networking_matches_the_loopback_prometheus_config():
    """One prometheus.yml serves bare metal and compose because every service shares the host's network."""
    services = resolved(*PROFILES)["services"]
    assert all(s.get("network_mode") == "host" for s in services.values())
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    ports = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in prom["scrape_configs"]}
    assert ports == {"exporter": "127.0.0.1:9945", "loadgen": "127.0.0.1:9946", "vllm": "127.0.0.1:8000",
                     "vllm-prefill": "127.0.0.1:8100", "vllm-decode": "127.0.0.1:8200", "proxy": "127.0.0.1:8000"}
    commands = {name: " ".join(map(str, s.get("command", []))) for name, s in services.items()}
    assert "--port 9945" in commands["exporter"] and "--metrics-port 9946" in commands["locust-master"]
    assert "--port 8100" in commands["vllm-prefill"] and "--port 8200" in commands["vllm-decode"]
    assert "--port 8000" in commands["proxy"] and "--port 8000" in commands["vllm"]
