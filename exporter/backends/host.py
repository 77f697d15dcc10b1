"""CPU-only machines: CPU frequency and utilization (psutil) and RAPL package energy from the powercap tree
(`powercap_root`, default /sys/class/powercap), so the exporter runs anywhere and says honestly that there is
no GPU. Each RAPL package is one device of kind "cpu"; without RAPL there is one device with no power reading."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from llm_dvfs.exporter.backends.base import Backend, DeviceInfo, DeviceReadError, GpuSample, select_indices


def rapl_packages(root: Path) -> list[Path]:
    """Top-level RAPL package zones (intel-rapl:0, intel-rapl:1, ...; AMD's amd-rapl too), sorted by number."""
    zones = [p for p in root.glob("*-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").exists()]
    return sorted(zones, key=lambda p: int(p.name.split(":")[1]))


class _RaplCounter:
    """Unwraps one zone's energy_uj (it wraps at max_energy_range_uj) into joules since start."""

    def __init__(self, zone: Path) -> None:
        self.zone = zone
        range_file = zone / "max_energy_range_uj"
        self._range = int(range_file.read_text()) if range_file.exists() else 2**32
        self._last = self._raw()
        self.total_j = 0.0

    def _raw(self) -> int:
        try:
            return int((self.zone / "energy_uj").read_text())
        except (OSError, ValueError) as exc:
            raise DeviceReadError(f"{self.zone}/energy_uj: {exc}") from None

    def read(self) -> float:
        raw = self._raw()
        delta = raw - self._last if raw >= self._last else raw + self._range - self._last
        self._last = raw
        self.total_j += delta / 1e6
        return self.total_j


class HostBackend(Backend):
    name = "host"
    has_gpu = False

    def __init__(self, cpu_ids: Sequence[int] | None = None, powercap_root: str | Path = "/sys/class/powercap",
                 psutil_module: Any | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if psutil_module is None:
            import psutil as psutil_module
        self._psutil, self._clock = psutil_module, clock
        zones = rapl_packages(Path(powercap_root)) if Path(powercap_root).exists() else []
        readable = []
        for zone in zones:
            try:
                readable.append(_RaplCounter(zone))
            except (OSError, DeviceReadError, ValueError):
                continue  # energy_uj is root-only on recent kernels
        indices = list(range(len(readable))) or [0]
        self._indices = select_indices(indices, cpu_ids)
        self._rapl = {i: readable[i] for i in self._indices if i < len(readable)}
        self._last: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._util: tuple[float, float] | None = None
        self._psutil.cpu_percent(interval=None)  # prime: the next call measures since now
        name = self._cpu_name()
        self._info = [
            DeviceInfo(index=i, name=name, uuid=f"cpu-package-{i}", vendor="cpu", driver="", backend=self.name,
                       energy_source="counter" if i in self._rapl else "none", kind="cpu")
            for i in self._indices
        ]

    @staticmethod
    def _cpu_name() -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "CPU"

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def _utilization(self) -> float:
        """Busy fraction since the previous tick, shared by all packages of the same tick."""
        with self._lock:
            now = self._clock()
            if self._util is None or now - self._util[0] > 0.01:
                self._util = (now, self._psutil.cpu_percent(interval=None) / 100.0)
            return self._util[1]

    def read(self, index: int) -> GpuSample:
        freq = self._psutil.cpu_freq()
        util = self._utilization()
        power = energy = None
        rapl = self._rapl.get(index)
        if rapl is not None:
            now = self._clock()
            energy = rapl.read()
            previous = self._last.get(index)
            self._last[index] = (now, energy)
            if previous is not None and now > previous[0]:
                power = (energy - previous[1]) / (now - previous[0])  # RAPL has no instant power: mean since last
        return GpuSample(power_w=power, energy_j=energy, utilization=util,
                         clocks_hz={"core": freq.current * 1e6} if freq else {})
