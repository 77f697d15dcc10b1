"""AMD GPUs / Hygon DCUs through the `rocm-smi` or `hy-smi` command's JSON output, for machines without the
amdsmi Python API. Untested on hardware: tested with a fake CLI printing outputs in the tools' documented format.

One CLI run (~100 ms or more) serves every device of a tick, so prefer --interval 0.5 or more with this backend.
hy-smi mixes warnings and banners into its JSON; only the first JSON object in the output is parsed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from typing import Any, Callable, Sequence

from llm_dvfs.exporter.backends.base import (
    Backend,
    BackendUnavailableError,
    DeviceError,
    DeviceInfo,
    DeviceLostError,
    DeviceReadError,
    GpuSample,
    select_indices,
)

TOOLS = ("rocm-smi", "hy-smi")
FLAGS = ("--showuse", "--showmemuse", "--showpower", "--showmaxpower", "--showtemp", "--showclocks",
         "--showmeminfo", "vram", "--showenergycounter", "--showuniqueid", "--showproductname",
         "--showdriverversion", "--json")
_CARD = re.compile(r"^card(\d+)$")
_MHZ = re.compile(r"\(?\s*([\d.]+)\s*Mhz", re.IGNORECASE)

# Each reading and the keys the tools use for it, first match wins.
KEYS: dict[str, tuple[str, ...]] = {
    "power": ("Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)"),
    "power_average": ("Average Graphics Package Power (W)",),
    "energy_uj": ("Accumulated Energy (uJ)",),
    "utilization": ("GPU use (%)", "HCU use (%)", "DCU use (%)"),
    "memory_utilization": ("GPU Memory Read/Write Activity (%)", "GPU memory use (%)", "HCU memory use (%)",
                           "DCU memory use (%)"),
    "temperature": ("Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)"),
    "memory_total": ("VRAM Total Memory (B)",),
    "memory_used": ("VRAM Total Used Memory (B)",),
    "power_limit": ("Max Graphics Package Power (W)",),
    "graphics_clock": ("sclk clock speed:",),
    "memory_clock": ("mclk clock speed:",),
}


def first_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`, skipping any non-JSON lines around it."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise DeviceReadError("no JSON object in the SMI output")


def _pick(card: dict[str, Any], reading: str) -> float | None:
    for key in KEYS[reading]:
        raw = card.get(key)
        if raw is None:
            continue
        text = str(raw).strip()
        m = _MHZ.search(text) if reading.endswith("_clock") else None
        try:
            return float(m.group(1)) if m else float(text)
        except ValueError:
            continue  # "N/A"
    return None


def parse_cards(text: str) -> dict[int, dict[str, Any]]:
    """{card index: its key/value dict} from one SMI JSON output."""
    return {int(m.group(1)): v for k, v in first_json_object(text).items()
            if (m := _CARD.match(k)) and isinstance(v, dict)}


def card_sample(card: dict[str, Any]) -> GpuSample:
    power, average = _pick(card, "power"), _pick(card, "power_average")
    energy, util, mem_util = _pick(card, "energy_uj"), _pick(card, "utilization"), _pick(card, "memory_utilization")
    clocks = {label: mhz * 1e6 for label in ("graphics", "memory")
              if (mhz := _pick(card, f"{label}_clock")) is not None}
    return GpuSample(
        power_w=power, power_average_w=average, energy_j=energy / 1e6 if energy is not None else None,
        utilization=util / 100 if util is not None else None,
        memory_utilization=mem_util / 100 if mem_util is not None else None,
        temperature_c=_pick(card, "temperature"), memory_used_bytes=_pick(card, "memory_used"),
        memory_total_bytes=_pick(card, "memory_total"), clocks_hz=clocks, power_limit_w=_pick(card, "power_limit"),
    )


def default_command() -> list[str]:
    for tool in TOOLS:
        path = shutil.which(tool)
        if path:
            return [path, *FLAGS]
    raise BackendUnavailableError("neither rocm-smi nor hy-smi is on PATH")


class SmiCliBackend(Backend):
    name = "smi-cli"
    read_budget = 0.9  # the first read of a tick runs the CLI for every card (hundreds of ms)

    def __init__(self, command: Sequence[str] | None = None, gpu_ids: Sequence[int] | None = None,
                 timeout: float = 5.0, max_age: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self._command = list(command) if command else default_command()
        self._timeout, self._max_age, self._clock = timeout, max_age, clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[int, dict[str, Any]]] | None = None
        try:
            cards = self._cards()
        except DeviceError as exc:
            raise BackendUnavailableError(f"{self._command[0]} gave no usable output: {exc}") from None
        if not cards:
            raise BackendUnavailableError(f"{self._command[0]} lists no GPU")
        self._indices = select_indices(sorted(cards), gpu_ids)
        tool = " ".join(self._command)
        self._info = []
        for i in self._indices:
            card = cards[i]
            vendor_text = f"{card.get('Card Vendor', '')} {tool}".lower()
            clocks = card_sample(card)
            self._info.append(DeviceInfo(
                index=i, name=str(card.get("Card Series") or card.get("Device Name") or "AMD GPU"),
                uuid=str(card.get("Unique ID", f"card{i}")),
                vendor="hygon" if ("hy-smi" in vendor_text or "haiguang" in vendor_text or "hygon" in vendor_text)
                else "amd",
                driver=str(card.get("Driver version", "")), backend=self.name,
                energy_source="counter" if clocks.energy_j is not None else "integrated"))

    def _run(self) -> str:
        try:
            done = subprocess.run(self._command, capture_output=True, text=True, timeout=self._timeout)
        except FileNotFoundError:
            raise BackendUnavailableError(f"{self._command[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise DeviceReadError(f"{self._command[0]} took longer than {self._timeout} s") from None
        if done.returncode != 0:
            raise DeviceLostError(f"{self._command[0]} failed: {done.stderr.strip()[:200]}")
        return done.stdout

    def _cards(self) -> dict[int, dict[str, Any]]:
        """One CLI run shared by all devices reading within `max_age` seconds of its end (the sampler reads them
        one after another, so a run longer than `max_age` must not make the next device run it again)."""
        with self._lock:
            if self._cached is None or self._clock() - self._cached[0] > self._max_age:
                cards = parse_cards(self._run())
                self._cached = (self._clock(), cards)
            return self._cached[1]

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def read(self, index: int) -> GpuSample:
        card = self._cards().get(index)
        if card is None:
            raise DeviceLostError(f"card{index} is missing from the SMI output")
        sample = card_sample(card)
        if sample.power_w is None and sample.energy_j is None:
            raise DeviceReadError(f"card{index}: no power reading in the SMI output")
        return sample
