"""FakeAmdSmi: a stand-in for the `amdsmi` Python module at its call boundary, with amdsmi 7.0's names, enums,
exception types and return shapes (dicts; "N/A" for fields a device does not report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = err_code


class AmdSmiClkType(IntEnum):
    SYS = 0
    GFX = 0
    MEM = 4


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0


AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF


@dataclass
class FakeAmdGpu:
    market_name: str = "AMD Instinct MI300X"
    vendor_name: str = "Advanced Micro Devices Inc. [AMD/ATI]"
    uuid: str = "5fff74a1-0000-1000-80fa-c1d5ce0000a7"
    current_socket_power: object = 356  # W, "N/A" on parts without it
    average_socket_power: object = "N/A"
    energy_accumulator: int = 1_000_000
    counter_resolution: float = 15.3  # µJ per count
    gfx_activity: object = 75
    umc_activity: object = 30
    gfx_clk: int = 2100
    gfx_max: int = 2100
    mem_clk: int = 1300
    mem_max: int = 1300
    hotspot_c: int = 58
    vram_used_mb: int = 150_000
    vram_total_mb: int = 196_592
    power_cap_uw: int = 750_000_000
    fail: int | None = None
    unsupported: set = field(default_factory=set)


class FakeAmdSmi:
    """Module-like object: `AmdSmiBackend(amdsmi=FakeAmdSmi([...]))`."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiClkType = AmdSmiClkType
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric

    def __init__(self, gpus: list[FakeAmdGpu] | None = None, driver: str = "6.8.5") -> None:
        self.gpus = gpus if gpus is not None else [FakeAmdGpu()]
        self.driver = driver

    def _enter(self, gpu: FakeAmdGpu, fn: str) -> None:
        if gpu.fail is not None:
            raise AmdSmiLibraryException(gpu.fail)
        if fn in gpu.unsupported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)

    def amdsmi_init(self, flag: int = 2) -> None:
        pass

    def amdsmi_shut_down(self) -> None:
        pass

    def amdsmi_get_processor_handles(self) -> list[FakeAmdGpu]:
        return list(self.gpus)

    def amdsmi_get_gpu_device_uuid(self, h: FakeAmdGpu) -> str:
        return h.uuid

    def amdsmi_get_gpu_asic_info(self, h: FakeAmdGpu) -> dict:
        return {"market_name": h.market_name, "vendor_id": "0x1002", "vendor_name": h.vendor_name,
                "device_id": "0x74a1", "rev_id": "0x00", "asic_serial": "0xC1D5CE0000A7"}

    def amdsmi_get_gpu_driver_info(self, h: FakeAmdGpu) -> dict:
        return {"driver_name": "amdgpu", "driver_version": self.driver, "driver_date": "2015/01/01 00:00"}

    def amdsmi_get_power_info(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_power_info")
        return {"socket_power": h.current_socket_power, "current_socket_power": h.current_socket_power,
                "average_socket_power": h.average_socket_power, "gfx_voltage": "N/A", "soc_voltage": "N/A",
                "mem_voltage": "N/A", "power_limit": h.power_cap_uw // 1_000_000}

    def amdsmi_get_energy_count(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_energy_count")
        return {"energy_accumulator": h.energy_accumulator, "counter_resolution": h.counter_resolution,
                "timestamp": 0}

    def amdsmi_get_gpu_activity(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_gpu_activity")
        return {"gfx_activity": h.gfx_activity, "umc_activity": h.umc_activity, "mm_activity": "N/A"}

    def amdsmi_get_clock_info(self, h: FakeAmdGpu, clk: AmdSmiClkType) -> dict:
        self._enter(h, "amdsmi_get_clock_info")
        cur, top = (h.gfx_clk, h.gfx_max) if clk is AmdSmiClkType.GFX else (h.mem_clk, h.mem_max)
        return {"clk": cur, "min_clk": 500, "max_clk": top, "clk_locked": False, "clk_deep_sleep": False}

    def amdsmi_get_temp_metric(self, h: FakeAmdGpu, sensor, metric) -> int:
        self._enter(h, "amdsmi_get_temp_metric")
        return h.hotspot_c

    def amdsmi_get_gpu_vram_usage(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_gpu_vram_usage")
        return {"vram_total": h.vram_total_mb, "vram_used": h.vram_used_mb}

    def amdsmi_get_power_cap_info(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_power_cap_info")
        return {"power_cap": h.power_cap_uw, "default_power_cap": h.power_cap_uw, "dpm_cap": 0,
                "min_power_cap": 0, "max_power_cap": h.power_cap_uw}
