"""A real Prometheus scraping the exporter over TLS with basic auth (issue 13): a throwaway CA and server
certificate, the exporter toolkit's web config, and Prometheus' own `scheme: https`, `tls_config` and
`basic_auth`. The right password gives `up == 1` and gpu_* series; a wrong one a 401 and `up == 0`."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from tests.dashboards.stack import PrometheusServer
from tests.support import wait_until

from .exporter_process import ExporterProcess
from .tls_certs import make_pki

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
PASSWORD = "scrape-me"


def scrape_job(name: str, target: str, ca: str, password: str) -> dict:
    return {"job_name": name, "scheme": "https", "tls_config": {"ca_file": ca},
            "basic_auth": {"username": "prometheus", "password": password},
            "static_configs": [{"targets": [target]}]}


@pytest.mark.prometheus
@pytest.mark.timeout(120)
def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path):
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({  # cost 10, as `htpasswd -nBC 10` makes: paid once, then remembered
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()}}))
    exporter = ExporterProcess("--backend", f"replay:{FIXTURE}", "--web.config.file", str(web), scheme="https",
                               verify=str(pki.ca), auth=("prometheus", PASSWORD))
    target = f"127.0.0.1:{exporter.port}"
    prom = PrometheusServer({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [
        scrape_job("tls_auth", target, str(pki.ca), PASSWORD),
        scrape_job("wrong_password", target, str(pki.ca), "guess")]}, tmp_path)
    try:
        prom.start()

        def query(expr: str) -> list[dict]:
            body = requests.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=10).json()
            assert body["status"] == "success", body
            return body["data"]["result"]

        def scraped_both() -> bool:
            return {r["metric"]["job"] for r in query("up")} == {"tls_auth", "wrong_password"} and \
                bool(query('gpu_power_watts{job="tls_auth"}'))

        assert wait_until(scraped_both, timeout=30), prom.log_tail()
        up = {r["metric"]["job"]: float(r["value"][1]) for r in query("up")}
        assert up == {"tls_auth": 1.0, "wrong_password": 0.0}
        assert {r["metric"]["gpu"] for r in query('gpu_power_watts{job="tls_auth"}')} == {"0", "1"}
        assert query('gpu_power_watts{job="wrong_password"}') == []
        targets = requests.get(f"{prom.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        errors = {t["labels"]["job"]: t["lastError"] for t in targets}
        assert "401" in errors["wrong_password"] and errors["tls_auth"] == ""
    finally:
        prom.stop()
        assert exporter.stop() == 0
