"""`--web.config.file` (the exporter toolkit's format) on the running exporter: TLS, client certificates and basic
auth against bcrypt hashes; every bad file is one line and exit 2 (issue 13)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from llm_dvfs.exporter.basic_auth import BasicAuth

from .exporter_process import ExporterProcess
from .tls_certs import make_pki

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
PASSWORD = "correct horse"
FAST_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_config(folder: Path, doc: dict) -> Path:
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_tls_with_basic_auth(tmp_path):
    pki = make_pki(tmp_path)
    config = write_config(tmp_path, {  # paths relative to the file's folder, as in the toolkit
        "tls_server_config": {"cert_file": pki.server_cert.name, "key_file": pki.server_key.name},
        "basic_auth_users": {"prometheus": FAST_HASH}})
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--web.config.file", str(config), scheme="https",
                        verify=str(pki.ca), auth=("prometheus", PASSWORD))
    try:
        ok = requests.get(e.url, verify=str(pki.ca), auth=("prometheus", PASSWORD), timeout=5)
        assert ok.status_code == 200 and b"gpu_power_watts" in ok.content
        for auth in [("prometheus", "wrong"), ("nobody", PASSWORD), None]:
            refused = requests.get(e.url, verify=str(pki.ca), auth=auth, timeout=5)
            assert refused.status_code == 401, auth
            assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert b"gpu_" not in refused.content
        with pytest.raises(requests.ConnectionError):  # plain HTTP to a TLS port
            requests.get(e.url.replace("https://", "http://"), timeout=5)
        with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust our CA
            requests.get(e.url, auth=("prometheus", PASSWORD), timeout=5)
    finally:
        assert e.stop() == 0
    log = e.proc.stderr.read()
    assert "Traceback" not in log and len(log.strip().splitlines()) == 1, log  # just the start line


def test_basic_auth_over_plain_http(tmp_path):
    config = write_config(tmp_path, {"basic_auth_users": {"prometheus": FAST_HASH}})
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--web.config.file", str(config),
                        auth=("prometheus", PASSWORD))
    try:
        assert requests.get(e.url, timeout=5).status_code == 401
        assert requests.get(e.url, auth=("prometheus", PASSWORD), timeout=5).status_code == 200
    finally:
        assert e.stop() == 0


def test_client_certificate_required(tmp_path):
    pki = make_pki(tmp_path)
    config = write_config(tmp_path, {"tls_server_config": {
        "cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca), "min_version": "TLS13"}})
    client = (str(pki.client_cert), str(pki.client_key))
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--web.config.file", str(config), scheme="https",
                        verify=str(pki.ca), cert=client)
    try:
        assert requests.get(e.url, verify=str(pki.ca), cert=client, timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):  # no client certificate
            requests.get(e.url, verify=str(pki.ca), timeout=5)
    finally:
        assert e.stop() == 0


def test_empty_file_means_plain_http(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text("")
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--web.config.file", str(config))
    try:
        assert requests.get(e.url, timeout=5).status_code == 200
    finally:
        assert e.stop() == 0


def bad_configs(folder: Path) -> dict[str, tuple[str, str]]:
    """id -> (file text, what the one-line error must say)."""
    pki = make_pki(folder / "pki")
    (folder / "garbage.pem").write_text("not a certificate\n")
    tls = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    return {
        "bad yaml": ("tls_server_config: [unclosed\n", "not valid YAML"),
        "not a mapping": ("- a\n- b\n", "must be a mapping"),
        "unknown key": ("tls_config:\n  cert_file: x\n", "unknown key 'tls_config'"),
        "unknown tls key": (tls + "  certfile: x\n", "unknown key 'tls_server_config.certfile'"),
        "toolkit-only key": ("rate_limit:\n  interval: 1s\n", "rate_limit is not supported"),
        "cert missing": (f"tls_server_config:\n  cert_file: {folder / 'nope.pem'}\n  key_file: {pki.server_key}\n",
                         "cannot read cert_file"),
        "cert not PEM": (f"tls_server_config:\n  cert_file: {folder / 'garbage.pem'}\n  key_file: {pki.server_key}\n",
                         "not a PEM certificate"),
        "key does not match": (f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n",
                               "not a PEM certificate and its key"),
        "no key_file": (f"tls_server_config:\n  cert_file: {pki.server_cert}\n", "key_file is missing"),
        "bad client_auth_type": (tls + "  client_auth_type: Sometimes\n", "client_auth_type must be one of"),
        "unverified client certs": (tls + "  client_auth_type: RequireAnyClientCert\n", "client_auth_type"),
        "verify without CA": (tls + "  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file is missing"),
        "CA without policy": (tls + f"  client_ca_file: {pki.ca}\n", "client_auth_type is NoClientCert"),
        "bad min_version": (tls + "  min_version: SSL3\n", "min_version must be one of"),
        "plain password": ("basic_auth_users:\n  prometheus: hunter2\n", "basic_auth_users.prometheus is not a bcrypt"),
        "users not a mapping": ("basic_auth_users: [a]\n", "basic_auth_users must map"),
    }


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-web-configs")


BAD_CASES = ["bad yaml", "not a mapping", "unknown key", "unknown tls key", "toolkit-only key", "cert missing",
             "cert not PEM", "key does not match", "no key_file", "bad client_auth_type", "unverified client certs",
             "verify without CA", "CA without policy", "bad min_version", "plain password", "users not a mapping",
             "missing file", "binary file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_web_config_is_one_line_and_exit_2(bad_folder, case):
    if case == "missing file":
        path, fragment = bad_folder / "does-not-exist.yml", "cannot read"
    elif case == "binary file":
        path, fragment = bad_folder / "binary.yml", "not UTF-8 text"
        path.write_bytes(b"\xff\xfe\x00binary")
    else:
        text, fragment = bad_configs(bad_folder / case.replace(" ", "-"))[case]
        path = bad_folder / f"{case.replace(' ', '-')}.yml"
        path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{FIXTURE}", "--port",
                             "0", "--duration", "1", "--web.config.file", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--web.config.file" in lines[0] and fragment in lines[0], lines[0]


def test_basic_auth_remembers_only_credentials_that_passed():
    htpasswd_style = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).replace(b"$2b$", b"$2y$")
    auth = BasicAuth({"prometheus": FAST_HASH.encode(), "grafana": htpasswd_style})
    good, wrong = basic("prometheus", PASSWORD), basic("prometheus", "nope")
    assert not auth.remembered(good)
    assert not auth.verify(wrong) and not auth.remembered(wrong)
    assert auth.verify(good) and auth.remembered(good)  # the next scrape skips bcrypt
    assert auth.verify(basic("grafana", "s3cret"))
    for header in [None, "", "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                   basic("nobody", PASSWORD), basic("grafana", PASSWORD), basic("prometheus", "x" * 100)]:
        assert not auth.verify(header), header
        assert not auth.remembered(header)
