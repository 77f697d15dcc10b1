"""What the sweep is pointed at: the served model and whether `--host` is one vLLM or the disaggregation proxy."""

from __future__ import annotations

import requests

from llm_dvfs.common.errors import UsageError


def served_model(host: str) -> str:
    """The first model id of `/v1/models`, as the load generator picks it by default."""
    try:
        response = requests.get(f"{host}/v1/models", timeout=10)
        response.raise_for_status()
        return response.json()["data"][0]["id"]
    except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
        raise UsageError(f"cannot list models at {host}/v1/models: {exc}") from None


def detect_mode(host: str) -> str:
    """"disaggregated" when `host` serves the proxy's metrics (`proxy_requests_total`), else "single"."""
    try:
        text = requests.get(f"{host}/metrics", timeout=10).text
    except requests.RequestException as exc:
        raise UsageError(f"cannot reach {host}/metrics to tell single from disaggregated: {exc}") from None
    return "disaggregated" if "proxy_requests_total" in text else "single"
