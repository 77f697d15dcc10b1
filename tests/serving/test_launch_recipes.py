"""The serve recipes' commands and environments, checked without starting anything (what `--dry-run` prints)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from llm_dvfs.common.errors import UsageError
from llm_dvfs.serving.launch import MULTICAST_OFF, DisaggPorts, main, plan_disagg, plan_single, to_process

VLLM = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
LEAD_ARGS = ["--load-format", "dummy", "--skip-tokenizer-init", "--max-model-len", "2048", "--max-num-seqs", "128"]


def kv_config(cmd: list[str]) -> dict:
    return json.loads(cmd[cmd.index("--kv-transfer-config") + 1])


def test_p2p_nccl_matches_the_configuration_that_ran_on_two_h200s(tmp_path: Path):
    proxy, prefill, decode = plan_disagg("p2p-nccl", "../llama-8b-shape", LEAD_ARGS, tmp_path)
    assert prefill.cmd[:len(VLLM)] == VLLM
    assert prefill.cmd[len(VLLM):len(VLLM) + 6] == ["--model", "../llama-8b-shape", "--host", "127.0.0.1",
                                                    "--port", "8100"]
    assert decode.cmd[decode.cmd.index("--port") + 1] == "8200"
    for inst in (prefill, decode):
        assert inst.cmd[len(VLLM) + 6:len(VLLM) + 6 + len(LEAD_ARGS)] == LEAD_ARGS
        assert inst.env["VLLM_DISABLE_REQUEST_ID_RANDOMIZATION"] == "1"
        assert inst.env["VLLM_HOST_IP"] == "127.0.0.1"
    assert prefill.env["CUDA_VISIBLE_DEVICES"] == "0" and decode.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert kv_config(prefill.cmd) == {
        "kv_connector": "P2pNcclConnector", "kv_role": "kv_producer", "kv_buffer_size": "1e1", "kv_port": "21001",
        "kv_connector_extra_config": {"proxy_ip": "127.0.0.1", "proxy_port": "30001", "http_port": "8100",
                                      "send_type": "PUT_ASYNC", "mem_pool_size_gb": "32"}}
    assert kv_config(decode.cmd) == {
        "kv_connector": "P2pNcclConnector", "kv_role": "kv_consumer", "kv_buffer_size": "8e9", "kv_port": "22001",
        "kv_connector_extra_config": {"proxy_ip": "127.0.0.1", "proxy_port": "30001", "http_port": "8200",
                                      "send_type": "PUT_ASYNC", "mem_pool_size_gb": "32"}}
    assert proxy.cmd[1:] == ["-m", "llm_dvfs.cli", "proxy", "--kv-protocol", "p2p-nccl",
                             "--prefill", "http://127.0.0.1:8100", "--decode", "http://127.0.0.1:8200",
                             "--port", "8000", "--listen-address", "127.0.0.1",
                             "--discovery-address", "127.0.0.1", "--discovery-port", "30001"]
    assert [p.log_path for p in (proxy, prefill, decode)] == [tmp_path / f"{n}.log" for n in
                                                               ("proxy", "prefill", "decode")]


def test_multicast_stays_off_in_every_process(tmp_path: Path):
    plans = [*plan_single("m", [], tmp_path), *plan_single("m", [], tmp_path, cpu=True)]
    for connector in ("p2p-nccl", "nixl", "example"):
        plans += plan_disagg(connector, "m", [], tmp_path)
    for p in plans:
        assert {k: p.env[k] for k in MULTICAST_OFF} == MULTICAST_OFF, p.name
        # and it reaches the child: the process env is os.environ plus the recipe's
        assert {k: to_process(p).env[k] for k in MULTICAST_OFF} == MULTICAST_OFF


def test_nixl_and_example_recipes(tmp_path: Path):
    proxy, prefill, decode = plan_disagg("nixl", "m", ["--enforce-eager"], tmp_path,
                                         DisaggPorts(proxy=9000, prefill=9100, decode=9200))
    assert kv_config(prefill.cmd) == kv_config(decode.cmd) == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    assert (prefill.env["VLLM_NIXL_SIDE_CHANNEL_PORT"], decode.env["VLLM_NIXL_SIDE_CHANNEL_PORT"]) == ("5600", "5601")
    assert "--enforce-eager" in prefill.cmd and "VLLM_DISABLE_REQUEST_ID_RANDOMIZATION" not in prefill.env
    assert proxy.cmd[proxy.cmd.index("--kv-protocol") + 1] == "kv-transfer-params"
    assert proxy.cmd[proxy.cmd.index("--prefill") + 1] == "http://127.0.0.1:9100"
    assert "--discovery-port" not in proxy.cmd

    _, prefill, decode = plan_disagg("example", "m", [], tmp_path, cpu=True)
    for inst in (prefill, decode):
        assert "CUDA_VISIBLE_DEVICES" not in inst.env and inst.env["VLLM_CPU_KVCACHE_SPACE"]
        assert kv_config(inst.cmd)["kv_connector_extra_config"] == {"shared_storage_path": str(tmp_path / "kv-storage")}


def test_single_recipe(tmp_path: Path):
    (vllm,) = plan_single("org/model", ["--dtype", "half"], tmp_path, gpu="3")
    assert vllm.cmd == [*VLLM, "--model", "org/model", "--host", "127.0.0.1", "--port", "8000", "--dtype", "half"]
    assert vllm.env["CUDA_VISIBLE_DEVICES"] == "3"
    assert to_process(vllm).cmd == vllm.cmd


def test_dry_run_prints_runnable_lines(tmp_path: Path, capsys):
    assert main(["disagg", "--connector", "p2p-nccl", "--model", "../llama-8b-shape", "--log-dir", str(tmp_path),
                 "--dry-run", "--", *LEAD_ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("#")] == ["proxy", "prefill", "decode"]
    prefill_line = lines[3]
    words = shlex.split(prefill_line)
    assert words[0] == "CUDA_VISIBLE_DEVICES=0" and "VLLM_DISABLE_REQUEST_ID_RANDOMIZATION=1" in words
    assert json.loads(words[words.index("--kv-transfer-config") + 1])["kv_role"] == "kv_producer"
    assert not tmp_path.joinpath("prefill.log").exists()


@pytest.mark.parametrize("argv, message", [
    (["disagg", "--model", "m"], "--connector"),
    (["disagg", "--connector", "nixl", "--cpu", "--model", "m"], "--cpu works with --connector example"),
    (["disagg", "--connector", "p2p-nccl", "--model", "m", "--decode-port", "30001"], "ports must all differ"),
    (["disagg", "--connector", "p2p-nccl", "--model", "m", "--kv-pool-gb", "0"], "--kv-pool-gb must be positive"),
    (["single", "--model", "m", "--port", "70000"], "1-65535"),
    (["single"], "--model"),
    (["cluster", "--model", "m"], "invalid choice"),
])
def test_bad_input_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match=message):
        main(argv)


def test_kv_pool_size_reaches_both_p2p_nccl_instances(tmp_path: Path, capsys):
    """The pool that ran out at 2 GB on two H200s (docs/results.md) is a recipe option, on both instances."""
    assert main(["disagg", "--connector", "p2p-nccl", "--model", "m", "--log-dir", str(tmp_path), "--kv-pool-gb", "8",
                 "--dry-run"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    configs = [json.loads(w[w.index("--kv-transfer-config") + 1]) for w in lines if "--kv-transfer-config" in w]
    assert [c["kv_connector_extra_config"]["mem_pool_size_gb"] for c in configs] == ["8", "8"]
