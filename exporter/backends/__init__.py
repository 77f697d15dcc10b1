"""Backend registry: each backend is named here and imported only when chosen; `auto` tries them in order
(nvml, amdsmi, smi-cli, host) and takes the first that finds a device."""

from __future__ import annotations

from typing import Callable, Sequence

from llm_dvfs.exporter.backends.base import Backend, BackendUnavailableError, DeviceNotFoundError
from llm_dvfs.exporter.backends.cadence import ReadCadence

AUTO_ORDER = ("nvml", "amdsmi", "smi-cli", "host")
NAMES = (*AUTO_ORDER, "replay:PATH", "auto")


def _nvml(gpu_ids: Sequence[int] | None, cadence: ReadCadence) -> Backend:
    from llm_dvfs.exporter.backends.nvml import NvmlBackend
    return NvmlBackend(gpu_ids=gpu_ids, energy_interval=cadence.energy_interval,
                       buffer_interval=cadence.buffer_interval, slow_interval=cadence.slow_interval)


def _amdsmi(gpu_ids: Sequence[int] | None, cadence: ReadCadence) -> Backend:
    from llm_dvfs.exporter.backends.amdsmi import AmdSmiBackend
    return AmdSmiBackend(gpu_ids=gpu_ids)


def _smi_cli(gpu_ids: Sequence[int] | None, cadence: ReadCadence) -> Backend:
    from llm_dvfs.exporter.backends.smi_cli import SmiCliBackend
    return SmiCliBackend(gpu_ids=gpu_ids)


def _host(gpu_ids: Sequence[int] | None, cadence: ReadCadence) -> Backend:
    from llm_dvfs.exporter.backends.host import HostBackend
    return HostBackend(cpu_ids=gpu_ids)


FACTORIES: dict[str, Callable[[Sequence[int] | None, ReadCadence], Backend]] = {
    "nvml": _nvml, "amdsmi": _amdsmi, "smi-cli": _smi_cli, "host": _host,
}


def create_backend(spec: str, gpu_ids: Sequence[int] | None = None, cadence: ReadCadence = ReadCadence()) -> Backend:
    """Build the backend named by `spec` (see NAMES); raise BackendUnavailableError with a one-line reason."""
    if spec.startswith("replay:"):
        from llm_dvfs.exporter.backends.replay import ReplayBackend
        path = spec.split(":", 1)[1]
        if not path:
            raise BackendUnavailableError("replay needs a file: --backend replay:PATH")
        return ReplayBackend(path, gpu_ids=gpu_ids)
    if spec == "auto":
        reasons = []
        for name in AUTO_ORDER:
            try:
                return FACTORIES[name](gpu_ids, cadence)
            except DeviceNotFoundError:
                raise
            except BackendUnavailableError as exc:
                reasons.append(f"{name}: {exc}")
        raise BackendUnavailableError("no backend works here (" + "; ".join(reasons) + ")")
    if spec not in FACTORIES:
        raise BackendUnavailableError(f"unknown backend {spec!r}; choose from {', '.join(NAMES)}")
    return FACTORIES[spec](gpu_ids, cadence)
