"""What the server says it serves at `/v1/models`: the first model's id and, from vLLM, its context length."""

from __future__ import annotations

from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class ServedModel:
    id: str
    #: prompt plus output tokens one request may have (vLLM's `max_model_len`); None where the server does not say
    max_model_len: int | None


def models_url(host: str) -> str:
    """`host` may end in /v1 or not; either way /v1/models is asked once."""
    base = host.rstrip("/")
    return base + ("/models" if base.endswith("/v1") else "/v1/models")


def served_model(host: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> ServedModel | None:
    """The first model `host` lists, or None if it cannot tell (down, not OpenAI-compatible, refused the key)."""
    try:
        response = requests.get(models_url(host), headers=headers, timeout=timeout)
        response.raise_for_status()
        first = response.json()["data"][0]
        length = first.get("max_model_len")
        return ServedModel(str(first["id"]), length if isinstance(length, int) and length > 0 else None)
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
