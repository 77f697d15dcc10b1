"""AMD GPUs and Hygon DCUs through the amdsmi Python API (imported only when chosen). Untested on hardware:
written against amdsmi 7.0's documented names and units and tested with FakeAmdSmi.

Units at this boundary: socket power W, energy accumulator × counter_resolution = µJ, clocks MHz, VRAM usage MB,
power cap µW, temperatures °C.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Sequence

from llm_dvfs.exporter.backends.base import (
    Backend,
    BackendUnavailableError,
    DeviceInfo,
    DeviceLostError,
    DeviceReadError,
    GpuSample,
    select_indices,
)

_MB = 1024 * 1024
# amdsmi_status_t codes
_NOT_SUPPORTED = 2
_NOT_FOUND = 31
_DRIVER_NOT_LOADED = 34


def load_amdsmi() -> ModuleType:
    """Import amdsmi; it raises KeyError (not ImportError) when libamd_smi.so is missing."""
    try:
        import amdsmi
    except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
        raise BackendUnavailableError(f"amdsmi is not usable here ({type(exc).__name__}: {exc}); needs ROCm's "
                                      "libamd_smi and pip install 'llm-dvfs[amd]'") from None
    return amdsmi


def _number(value: Any) -> float | None:
    """amdsmi writes "N/A" for fields a device does not report."""
    return float(value) if isinstance(value, (int, float)) else None


class AmdSmiBackend(Backend):
    name = "amdsmi"

    def __init__(self, amdsmi: ModuleType | Any | None = None, gpu_ids: Sequence[int] | None = None) -> None:
        self._smi = amdsmi if amdsmi is not None else load_amdsmi()
        smi = self._smi
        try:
            smi.amdsmi_init()
        except smi.AmdSmiException as exc:
            raise BackendUnavailableError(f"amdsmi could not initialise: {exc}") from None
        try:
            handles = smi.amdsmi_get_processor_handles()
            if not handles:
                raise BackendUnavailableError("amdsmi found no GPU")
            self._indices = select_indices(range(len(handles)), gpu_ids)
            self._handles = {i: handles[i] for i in self._indices}
            self._info = [self._describe(i) for i in self._indices]
        except smi.AmdSmiException as exc:
            smi.amdsmi_shut_down()
            raise BackendUnavailableError(f"amdsmi could not list GPUs: {exc}") from None
        except BackendUnavailableError:
            smi.amdsmi_shut_down()
            raise

    def _describe(self, index: int) -> DeviceInfo:
        smi, h = self._smi, self._handles[index]
        asic = smi.amdsmi_get_gpu_asic_info(h)
        driver = smi.amdsmi_get_gpu_driver_info(h)
        max_clocks = {}
        for label, clk in (("graphics", smi.AmdSmiClkType.GFX), ("memory", smi.AmdSmiClkType.MEM)):
            try:
                mhz = _number(smi.amdsmi_get_clock_info(h, clk).get("max_clk"))
            except smi.AmdSmiException:
                mhz = None
            if mhz is not None:
                max_clocks[label] = mhz * 1e6
        try:
            smi.amdsmi_get_energy_count(h)
            energy_source = "counter"
        except smi.AmdSmiException:
            energy_source = "integrated"
        vendor = "hygon" if "hygon" in str(asic.get("vendor_name", "")).lower() else "amd"
        return DeviceInfo(index=index, name=str(asic.get("market_name", "AMD GPU")),
                          uuid=str(smi.amdsmi_get_gpu_device_uuid(h)), vendor=vendor,
                          driver=str(driver.get("driver_version", "")), backend=self.name,
                          energy_source=energy_source, max_clocks_hz=max_clocks)

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def read(self, index: int) -> GpuSample:
        smi, h = self._smi, self._handles[index]
        failed: list[str] = []

        def get(field: str, call: Callable[[], Any]) -> Any:
            try:
                return call()
            except smi.AmdSmiLibraryException as exc:
                code = getattr(exc, "err_code", None)
                if code in (_NOT_FOUND, _DRIVER_NOT_LOADED):
                    raise DeviceLostError(f"GPU {index}: {exc}") from None
                if code != _NOT_SUPPORTED:
                    failed.append(field)
                return None
            except smi.AmdSmiException:
                failed.append(field)
                return None

        power = get("power", lambda: smi.amdsmi_get_power_info(h)) or {}
        energy = get("energy", lambda: smi.amdsmi_get_energy_count(h))
        activity = get("utilization", lambda: smi.amdsmi_get_gpu_activity(h)) or {}
        vram = get("memory", lambda: smi.amdsmi_get_gpu_vram_usage(h)) or {}
        cap = get("power_limit", lambda: smi.amdsmi_get_power_cap_info(h)) or {}
        clocks = {}
        for label, clk in (("graphics", smi.AmdSmiClkType.GFX), ("memory", smi.AmdSmiClkType.MEM)):
            info = get(f"clock_{label}", lambda c=clk: smi.amdsmi_get_clock_info(h, c)) or {}
            if _number(info.get("clk")) is not None:
                clocks[label] = _number(info["clk"]) * 1e6
        temperature = get("temperature", lambda: smi.amdsmi_get_temp_metric(
            h, smi.AmdSmiTemperatureType.HOTSPOT, smi.AmdSmiTemperatureMetric.CURRENT))

        # MI300 reports current_socket_power (instant); older parts only average_socket_power
        instant = _number(power.get("current_socket_power"))
        average = _number(power.get("average_socket_power"))
        if instant is None and average is None and energy is None:
            raise DeviceReadError(f"GPU {index}: no power or energy reading ({', '.join(failed) or 'unsupported'})")
        energy_j = None
        if energy is not None:
            energy_j = energy["energy_accumulator"] * energy["counter_resolution"] / 1e6
        gfx, umc = _number(activity.get("gfx_activity")), _number(activity.get("umc_activity"))
        used, total = _number(vram.get("vram_used")), _number(vram.get("vram_total"))
        limit = _number(cap.get("power_cap"))
        return GpuSample(
            power_w=instant if instant is not None else average,
            power_average_w=average,
            energy_j=energy_j,
            utilization=gfx / 100 if gfx is not None else None,
            memory_utilization=umc / 100 if umc is not None else None,
            temperature_c=_number(temperature),
            memory_used_bytes=used * _MB if used is not None else None,
            memory_total_bytes=total * _MB if total is not None else None,
            clocks_hz=clocks,
            power_limit_w=limit / 1e6 if limit is not None else None,
            failed_fields=tuple(failed),
        )

    def close(self) -> None:
        try:
            self._smi.amdsmi_shut_down()
        except self._smi.AmdSmiException:
            pass
