"""Which vendor's control to use: each imported only when chosen; `auto` takes NVML, then amdsmi."""

from __future__ import annotations

from llm_dvfs.commands.dvfs.control import ControlError, GpuControl

NAMES = ("auto", "nvml", "amdsmi")


def open_control(name: str = "auto") -> GpuControl:
    """The control backend `name`, or ControlError with a one-line reason."""
    if name not in NAMES:
        raise ControlError(f"unknown settings backend {name!r}; choose from {', '.join(NAMES)}")
    reasons = []
    for candidate in (("nvml", "amdsmi") if name == "auto" else (name,)):
        try:
            if candidate == "nvml":
                from llm_dvfs.commands.dvfs.nvml import NvmlControl
                control: GpuControl = NvmlControl()
            else:
                from llm_dvfs.commands.dvfs.amdsmi import AmdSmiControl
                control = AmdSmiControl()
            if control.gpus():
                return control
            control.close()
            reasons.append(f"{candidate}: no GPU")
        except ControlError as exc:
            reasons.append(f"{candidate}: {exc}")
    raise ControlError("no GPU whose settings can be controlled (" + "; ".join(reasons) + ")")
