"""How the operator wants the boot configuration read: the options a worker request carries.

Kept apart from ``session.py`` so the privileged parent can build a request without
importing the parsing stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from virtkit.errors import UsageError

__all__ = ["BootOptions"]


@dataclass(frozen=True)
class BootOptions:
    """How to read the guest's boot configuration.

    Attributes:
        config: force a configuration, ``DEVICE:PATH`` or ``PATH`` (first device holding it).
        platform: GRUB's ``grub_platform`` ("pc", "xen", "efi"); None = decide from the config.
        flavour: "upstream" or "fedora" default-entry rules; None = automatic.
        variables: GRUB variables to set before the configuration runs.
    """

    config: str | None = None
    platform: str | None = None
    flavour: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, object]:
        return {"config": self.config, "platform": self.platform, "flavour": self.flavour, "variables": dict(self.variables)}

    @classmethod
    def from_wire(cls, d: object) -> BootOptions:
        if not isinstance(d, dict):
            return cls()
        variables = d.get("variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
            raise UsageError("bad variables in boot options")

        def opt(key: str) -> str | None:
            v = d.get(key)
            return v if isinstance(v, str) else None

        return cls(config=opt("config"), platform=opt("platform"), flavour=opt("flavour"), variables=dict(variables))
