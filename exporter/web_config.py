"""`--web.config.file`: TLS and basic-auth users in the format of the Prometheus exporter toolkit, as node_exporter
takes it, so one file serves both. Read once at start: any problem is one UsageError line, never an exporter
that starts without the protection its operator asked for. Relative paths are relative to the file's folder (as
in the toolkit)."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from llm_dvfs.common.errors import UsageError

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
# Toolkit settings this exporter does not implement: refused by name rather than silently ignored.
TOOLKIT_ONLY = {"http_server_config", "rate_limit", "tls_server_config.cert", "tls_server_config.key",
                "tls_server_config.client_ca", "tls_server_config.client_allowed_sans",
                "tls_server_config.cipher_suites", "tls_server_config.prefer_server_cipher_suites",
                "tls_server_config.curve_preferences"}
# Go's RequestClientCert / RequireAnyClientCert ask for a certificate without verifying it; Python's ssl cannot,
# and the toolkit itself calls them insecure.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                "TLS13": ssl.TLSVersion.TLSv1_3}
BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    """What the file asks for: a server TLS context (None: plain HTTP) and bcrypt hashes by user (empty: open)."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    file = Path(path)
    try:
        doc = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise UsageError(f"--web.config.file: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--web.config.file {path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UsageError(f"--web.config.file {path}: not valid YAML{at}") from None
    doc = {} if doc is None else doc
    _check_keys(path, doc, "", {"tls_server_config", "basic_auth_users"})
    tls = doc.get("tls_server_config") or {}
    _check_keys(path, tls, "tls_server_config.", TLS_KEYS)
    return WebConfig(_tls_context(path, file.parent, tls) if tls else None,
                     _users(path, doc.get("basic_auth_users") or {}))


def _check_keys(path: str, section: Any, prefix: str, known: set[str]) -> None:
    if not isinstance(section, dict):
        raise UsageError(f"--web.config.file {path}: {prefix.rstrip('.') or 'the file'} must be a mapping")
    for key in section:
        name = f"{prefix}{key}"
        if name in TOOLKIT_ONLY:
            raise UsageError(f"--web.config.file {path}: {name} is not supported by llm-dvfs exporter")
        if key not in known:
            raise UsageError(f"--web.config.file {path}: unknown key {name!r} (known: {', '.join(sorted(known))})")


def _tls_context(path: str, base: Path, tls: dict[str, Any]) -> ssl.SSLContext:
    def file_of(key: str) -> str:
        value = tls.get(key)
        if not isinstance(value, str) or not value:
            raise UsageError(f"--web.config.file {path}: tls_server_config.{key} is missing")
        resolved = base / value
        try:
            resolved.read_bytes()
        except OSError as exc:
            raise UsageError(f"--web.config.file {path}: cannot read {key} {resolved}: {exc.strerror}") from None
        return str(resolved)

    def choice(key: str, options: Mapping[str, Any], default: str) -> Any:
        value = tls.get(key, default)
        if value not in options:
            raise UsageError(f"--web.config.file {path}: tls_server_config.{key} must be one of "
                             f"{', '.join(options)}, got {value!r}")
        return options[value]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = choice("min_version", TLS_VERSIONS, "TLS12")
    context.maximum_version = choice("max_version", TLS_VERSIONS, "TLS13")
    context.set_alpn_protocols(["http/1.1"])
    cert, key = file_of("cert_file"), file_of("key_file")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise UsageError(f"--web.config.file {path}: {cert} and {key} are not a PEM certificate and its key "
                         f"({exc.reason or exc})") from None
    context.verify_mode = choice("client_auth_type", CLIENT_AUTH, "NoClientCert")
    if context.verify_mode != ssl.CERT_NONE or tls.get("client_ca_file"):
        if context.verify_mode == ssl.CERT_NONE:
            raise UsageError(f"--web.config.file {path}: client_ca_file is set but client_auth_type is "
                             "NoClientCert")
        ca = file_of("client_ca_file")
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise UsageError(f"--web.config.file {path}: {ca} is not a PEM CA certificate ({exc.reason or exc})") \
                from None
    return context


def _users(path: str, section: Any) -> dict[str, bytes]:
    if not isinstance(section, dict):
        raise UsageError(f"--web.config.file {path}: basic_auth_users must map user names to bcrypt hashes")
    users = {}
    for user, hashed in section.items():
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            raise UsageError(f"--web.config.file {path}: basic_auth_users.{user} is not a bcrypt hash "
                             "(make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[str(user)] = hashed.encode()
    if users:
        try:
            import bcrypt  # noqa: F401 - only basic auth needs it
        except ImportError:
            raise UsageError(f"--web.config.file {path}: basic_auth_users needs the bcrypt package "
                             "(pip install bcrypt)") from None
    return users
