"""Backend selection by name, and `auto` falling through nvml, amdsmi, smi-cli to host on a GPU-less machine."""

from __future__ import annotations

import shutil

import pytest

from llm_dvfs.exporter.backends import AUTO_ORDER, create_backend
from llm_dvfs.exporter.backends.base import BackendUnavailableError


def test_auto_order_is_the_documented_one():
    assert AUTO_ORDER == ("nvml", "amdsmi", "smi-cli", "host")


@pytest.mark.skipif(shutil.which("nvidia-smi") or shutil.which("rocm-smi") or shutil.which("hy-smi"),
                    reason="this machine has a GPU tool; auto would pick it")
def test_auto_falls_back_to_host_without_gpus():
    backend = create_backend("auto")
    try:
        assert backend.name == "host" and not backend.has_gpu
    finally:
        backend.close()


@pytest.mark.parametrize("spec, message", [("cuda", "unknown backend 'cuda'"), ("replay:", "replay needs a file"),
                                           ("smi-cli", "rocm-smi nor hy-smi")])
def test_bad_specs(spec, message):
    if spec == "smi-cli" and (shutil.which("rocm-smi") or shutil.which("hy-smi")):
        pytest.skip("an SMI tool is installed here")
    with pytest.raises(BackendUnavailableError, match=message):
        create_backend(spec)
