"""How the KV cache travels from the prefill instance to the decode instance: one protocol, one file per connector
family, chosen by `--kv-protocol`."""

from __future__ import annotations

from llm_dvfs.serving.proxy.handoff.base import Handoff, NoInstanceError, Route

__all__ = ["Handoff", "NoInstanceError", "Route"]
