"""The sweep asks the server which model it serves through the load generator's own `/v1/models` lookup."""

from __future__ import annotations

import pytest

from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.target import model_id
from tests.loadgen.scripted_server import ScriptedServer
from tests.support import free_port


def test_the_model_id_comes_from_v1_models_with_or_without_the_v1_suffix():
    with ScriptedServer() as server:
        assert model_id(server.url) == model_id(server.url + "/v1/") == "scripted"
        assert len(server.models_headers) == 2


def test_no_server_is_one_usage_error():
    with pytest.raises(UsageError, match=r"cannot list models at http://127\.0\.0\.1:\d+/v1/models"):
        model_id(f"http://127.0.0.1:{free_port()}")
