"""Reading QEMU command lines: options, ``key=value`` lists and JSON option values.

References:
    QEMU ``util/qemu-option.c`` and ``docs/system/invocation`` (the
        ``key=value,key=value`` syntax; ``,,`` is a literal comma; the first
        item may omit its key, which is then the option's *implied* key:
        ``-name guest``, ``-object qom-type``, ``-device driver``,
        ``-chardev backend``).
    QEMU >= 6.0 accepts JSON for ``-object`` and ``-device``
        (``-object {"qom-type":"rng-random",...}``); libvirt >= 7.x uses it.
    ``-cpu MODEL[,+feat|-feat|feat=on|off...]`` (target/i386/cpu.c feature parsing).

Command lines come from ``/proc/PID/cmdline`` of processes we do not control,
so every function here is total: bad input gives an empty or partial result,
never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CpuSpec",
    "QemuCommandLine",
    "is_qemu",
    "iter_options",
    "parse_cpu",
    "parse_keyvals",
    "parse_option_value",
]

# Options that take a value (enough of them to walk argv without a full table:
# anything starting with "-" that is not in _NO_VALUE is assumed to take one).
_NO_VALUE = frozenset(
    {
        "-nographic", "-no-reboot", "-no-shutdown", "-nodefaults", "-S", "-daemonize", "-enable-kvm",
        "-no-user-config", "-no-hpet", "-no-acpi", "-snapshot", "-full-screen", "-version", "-help",
        "-h", "-s", "-no-fd-bootchk", "-preconfig", "-only-migratable", "-win2k-hack", "-no-kvm",
        "-usb", "-sandbox-off", "-nolisten",
    }
)
_IMPLIED = {"-name": "guest", "-object": "qom-type", "-device": "driver", "-chardev": "backend", "-netdev": "type"}


def is_qemu(argv: Sequence[str]) -> bool:
    """Does ``argv[0]`` look like a QEMU system emulator (``qemu-system-*``, ``qemu-kvm``, ``kvm``)?"""
    if not argv:
        return False
    base = argv[0].rsplit("/", 1)[-1]
    return base.startswith(("qemu-system-", "qemu-kvm")) or base in ("kvm", "qemu")


def iter_options(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
    """``(option, value)`` pairs of a QEMU command line (``--opt`` is folded to ``-opt``).

    Options without a value yield ``""``; non-option words (the odd disk image
    given positionally) are skipped.
    """
    i = 1
    n = len(argv)
    while i < n:
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            continue
        opt = "-" + word.lstrip("-")
        if "=" in opt:  # --opt=value (QEMU accepts it for a few options)
            opt, _, value = opt.partition("=")
            yield opt, value
            continue
        if opt in _NO_VALUE or i >= n:
            yield opt, ""
            continue
        yield opt, argv[i]
        i += 1


def parse_keyvals(text: str, implied: str | None = None) -> dict[str, str]:
    """Split ``a=1,b=2`` with QEMU's escaping (``,,`` = a literal comma).

    Args:
        text: the option value.
        implied: key for a first item that has no ``=`` (``-device virtio-rng-pci,...``).

    Returns:
        key -> value; a bare item other than the first becomes ``key=""``
        (QEMU treats ``foo`` as ``foo=on`` for booleans; callers decide).
    """
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ",":
            if i + 1 < len(text) and text[i + 1] == ",":
                cur.append(",")
                i += 2
                continue
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    items.append("".join(cur))
    out: dict[str, str] = {}
    for idx, item in enumerate(items):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            if idx == 0 and implied is not None:
                out.setdefault(implied, key)
            else:
                out.setdefault(key, "")
            continue
        out.setdefault(key, value)
    return out


def parse_option_value(option: str, value: str) -> dict[str, str]:
    """Parse the value of ``-object``/``-device``/``-chardev``/``-name``..., JSON or ``key=value``.

    JSON values are flattened to strings (``true`` -> ``"on"``, numbers -> decimal).
    """
    implied = _IMPLIED.get(option)
    text = value.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return {}
        if not isinstance(obj, dict):
            return {}
        out: dict[str, str] = {}
        for k, v in obj.items():
            if isinstance(v, bool):
                out[str(k)] = "on" if v else "off"
            elif isinstance(v, (int, float, str)):
                out[str(k)] = str(v)
        return out
    return parse_keyvals(value, implied)


@dataclass(frozen=True)
class CpuSpec:
    """``-cpu MODEL,+feat,-feat,feat=on``: the model and the explicit feature switches."""

    model: str
    enabled: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()


def parse_cpu(value: str) -> CpuSpec:
    """Parse a ``-cpu`` value (see :class:`CpuSpec`)."""
    parts = [p for p in value.split(",") if p]
    if not parts:
        return CpuSpec("")
    model, rest = parts[0], parts[1:]
    on: set[str] = set()
    off: set[str] = set()
    for p in rest:
        if p.startswith("+"):
            on.add(p[1:].lower())
            off.discard(p[1:].lower())
        elif p.startswith("-"):
            off.add(p[1:].lower())
            on.discard(p[1:].lower())
        else:
            key, sep, val = p.partition("=")
            key = key.lower()
            if not sep or val.lower() in ("on", "true", "yes"):
                on.add(key)
                off.discard(key)
            elif val.lower() in ("off", "false", "no"):
                off.add(key)
                on.discard(key)
    return CpuSpec(model, frozenset(on), frozenset(off))


@dataclass
class QemuCommandLine:
    """The parts of a QEMU command line the entropy audit and peer identity need.

    Attributes:
        argv: the command line.
        name: the guest name from ``-name`` (None without one).
        objects: ``-object`` values by id.
        chardevs: ``-chardev`` values by id.
        devices: every ``-device`` value, in order.
        cpu: the ``-cpu`` value (None: QEMU's default model).
        accel: ``-accel``/``-machine accel=``/``-enable-kvm`` seen (``kvm``, ``tcg``...).
    """

    argv: list[str]
    name: str | None = None
    objects: dict[str, dict[str, str]] = field(default_factory=dict)
    chardevs: dict[str, dict[str, str]] = field(default_factory=dict)
    devices: list[dict[str, str]] = field(default_factory=list)
    cpu: CpuSpec | None = None
    accel: str | None = None

    @classmethod
    def parse(cls, argv: Sequence[str]) -> QemuCommandLine:
        out = cls(list(argv))
        for opt, value in iter_options(argv):
            if opt == "-name":
                name = parse_option_value(opt, value).get("guest")
                if name:
                    out.name = name
            elif opt == "-object":
                obj = parse_option_value(opt, value)
                out.objects[obj.get("id", f"#{len(out.objects)}")] = obj
            elif opt == "-chardev":
                chardev = parse_option_value(opt, value)
                out.chardevs[chardev.get("id", f"#{len(out.chardevs)}")] = chardev
            elif opt == "-device":
                out.devices.append(parse_option_value(opt, value))
            elif opt == "-cpu":
                out.cpu = parse_cpu(value)
            elif opt == "-enable-kvm":
                out.accel = "kvm"
            elif opt == "-accel":
                out.accel = parse_keyvals(value, "accel").get("accel", out.accel)
            elif opt in ("-machine", "-M"):
                accel = parse_keyvals(value, "type").get("accel")
                if accel:
                    out.accel = accel.split(":")[0]
        return out

    @classmethod
    def from_proc_bytes(cls, raw: bytes) -> QemuCommandLine:
        """From the NUL-separated bytes of ``/proc/PID/cmdline`` (undecodable bytes are escaped)."""
        words = raw.rstrip(b"\0").split(b"\0") if raw else []
        return cls.parse([w.decode("utf-8", "surrogateescape") for w in words])
