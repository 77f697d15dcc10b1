"""FakeAmdSmiControl: FakeAmdSmi (tests/exporter/fake_amdsmi.py) plus the power-cap setter, at the amdsmi call
boundary only; `log` records every amdsmi_set_power_cap call (refused ones with their status code)."""

from __future__ import annotations

from tests.exporter.fake_amdsmi import AmdSmiLibraryException, FakeAmdGpu, FakeAmdSmi

AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NO_PERM = 10
MIN_CAP_UW, MAX_CAP_UW, DEFAULT_CAP_UW = 300_000_000, 750_000_000, 750_000_000


class FakeAmdSmiControl(FakeAmdSmi):
    def __init__(self, gpus: list[FakeAmdGpu] | None = None, refuse: int | None = None) -> None:
        super().__init__(gpus)
        self.refuse = refuse  # a status code every set answers with, e.g. AMDSMI_STATUS_NO_PERM
        self.log: list[tuple[str, int, int | None]] = []

    def amdsmi_get_power_cap_info(self, h: FakeAmdGpu) -> dict:
        self._enter(h, "amdsmi_get_power_cap_info")
        return {"power_cap": h.power_cap_uw, "default_power_cap": DEFAULT_CAP_UW, "dpm_cap": 0,
                "min_power_cap": MIN_CAP_UW, "max_power_cap": MAX_CAP_UW}

    def amdsmi_set_power_cap(self, h: FakeAmdGpu, sensor_ind: int, cap: int) -> None:
        error = self.refuse if self.refuse is not None else \
            None if MIN_CAP_UW <= cap <= MAX_CAP_UW and sensor_ind == 0 else AMDSMI_STATUS_INVAL
        self.log.append((h.uuid, cap, error))
        if error is not None:
            raise AmdSmiLibraryException(error)
        h.power_cap_uw = cap
