"""Hand-off through `kv_transfer_params` (vLLM >= 0.24: NixlConnector on GPUs, ExampleConnector on CPU).

The prefill hop is asked to keep its KV cache for a remote decode; whatever `kv_transfer_params` it answers with
(NIXL: engine id, block ids, host, port) goes into the decode hop's request, which then pulls the cache instead of
recomputing the prompt. Instances are the fixed `--prefill` / `--decode` lists.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from llm_dvfs.serving.proxy.handoff.base import RoundRobin, Route, one_token_request


class KvTransferParamsHandoff:
    name = "kv-transfer-params"

    def __init__(self, prefill: Sequence[str], decode: Sequence[str]) -> None:
        self._prefill, self._decode = RoundRobin(prefill), RoundRobin(decode)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def instances(self) -> dict[str, list[str]]:
        return {"prefill": list(self._prefill.urls), "decode": list(self._decode.urls)}

    def route(self) -> Route:
        return Route(self._prefill.pick("prefill"), self._decode.pick("decode"), uuid.uuid4().hex)

    def prefill_body(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        out = one_token_request(body)
        # The remote_* fields are filled in by the prefill instance in its answer.
        out["kv_transfer_params"] = {"do_remote_decode": True, "do_remote_prefill": False, "remote_engine_id": None,
                                     "remote_block_ids": None, "remote_host": None, "remote_port": None}
        return out

    def decode_body(self, body: dict[str, Any], prefill_answer: dict[str, Any], route: Route) -> dict[str, Any]:
        params = prefill_answer.get("kv_transfer_params")
        return {**body, "kv_transfer_params": params} if params else dict(body)
