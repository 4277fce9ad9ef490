"""Which device SOL compiles for and runs on.

Mirrors the product surface from the talks::

    sol.device.set(sol.device.x86, 0)
    dev, index = sol.device.get()

The registry knows every device name SOL has a plan for; whether a device is
usable is the core's decision (`sol._core.devices()`), so a known-but-missing
device fails with a clear `DeviceError` instead of an AttributeError. This
module knows nothing about frameworks: mapping a SOL device to, e.g., a torch
device type is the front end's job.
"""

from __future__ import annotations

import enum
import threading

from sol._logging import logger

__all__ = ["Device", "x86", "arm64", "nvidia", "ve", "set", "get", "available"]


class Device(enum.Enum):
    """A device family. `.name` is the name the core uses (e.g. "x86")."""

    x86 = "x86"
    arm64 = "arm64"
    nvidia = "nvidia"
    ve = "ve"  # NEC SX-Aurora vector engine

    def __str__(self) -> str:
        return self.name


x86 = Device.x86
arm64 = Device.arm64
nvidia = Device.nvidia
ve = Device.ve

# The process-wide selection. A tuple is swapped in one assignment, so readers
# never see a device from one call and an index from another; the lock only
# orders concurrent writers.
_current: tuple[Device, int] = (Device.x86, 0)
_lock = threading.Lock()


def available() -> list[str]:
    """Names of the devices the core was built with and found at run time."""
    from sol._loader import core

    return list(core().devices())


# Devices that are the host itself: one instance, index 0.
_HOST_DEVICES = (Device.x86, Device.arm64)


def _device_count(device: Device) -> int:
    """How many devices of this kind exist. Asked of the core when it can tell
    (a `device_count(name)` function); otherwise host devices have exactly one
    and others are not limited here (the core checks the index at compile)."""
    from sol._loader import core

    count = getattr(core(), "device_count", None)
    if count is not None:
        return int(count(device.name))
    return 1 if device in _HOST_DEVICES else 1 << 30


def _as_device(dev: Device | str) -> Device:
    if isinstance(dev, Device):
        return dev
    if isinstance(dev, str):
        try:
            return Device[dev]
        except KeyError:
            pass
    from sol._loader import core

    known = ", ".join(d.name for d in Device)
    raise core().DeviceError(f"unknown SOL device {dev!r}; SOL knows {known}")


def set(dev: Device | str, index: int = 0) -> None:  # noqa: A001 - the product API name
    """Select the device (and its index) that later optimize/forward calls use."""
    global _current
    device = _as_device(dev)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"device index must be a non-negative int, got {index!r}")
    from sol._loader import core

    names = available()
    if device.name not in names:
        raise core().DeviceError(
            f"SOL device {device.name!r} is not available in this build/machine; "
            f"available: {', '.join(names) or 'none'}"
        )
    count = _device_count(device)
    if index >= count:
        raise core().DeviceError(
            f"SOL device {device.name} has no index {index}; valid: 0..{count - 1}"
        )
    with _lock:
        _current = (device, index)
    logger.debug("device set to %s:%d", device.name, index)


def get() -> tuple[Device, int]:
    """The selected (device, index); x86, 0 unless `set` was called."""
    return _current
