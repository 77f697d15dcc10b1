"""What the sweep is pointed at: the served model and whether `--host` is one vLLM or the disaggregation proxy."""

from __future__ import annotations

import requests

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.served_model import models_url, served_model


def model_id(host: str) -> str:
    """The first model id of `/v1/models`, looked up as the load generator looks it up by default."""
    served = served_model(host, timeout=10)
    if served is None:
        raise UsageError(f"cannot list models at {models_url(host)}: no OpenAI-compatible answer (is the server up?)")
    return served.id


def detect_mode(host: str) -> str:
    """"disaggregated" when `host` serves the proxy's metrics (`proxy_requests_total`), else "single"."""
    try:
        text = requests.get(f"{host}/metrics", timeout=10).text
    except requests.RequestException as exc:
        raise UsageError(f"cannot reach {host}/metrics to tell single from disaggregated: {exc}") from None
    return "disaggregated" if "proxy_requests_total" in text else "single"
