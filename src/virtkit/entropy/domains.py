"""Guest RNG configuration from libvirt domain XML, live libvirt, or running QEMU processes.

References:
    libvirt ``docs/formatdomain.rst``: ``<rng model='virtio'>`` with
        ``<rate bytes= period=>`` (period in ms, default 1000) and
        ``<backend model='random'>FILE</backend>`` / ``model='egd' type='unix|tcp|...'``
        with ``<source mode='connect' path|host|service>`` and
        ``<reconnect enabled='yes' timeout='N'/>`` *inside* ``<source>`` /
        ``model='builtin'``; ``<genid/>``; ``<cpu mode='custom|host-model|host-passthrough|maximum'>``
        with ``<model>`` and ``<feature policy= name=>``.
    QEMU: ``-object rng-random,filename=`` (default /dev/urandom in QEMU 7.2,
        checked with ``qom-get``), ``rng-egd,chardev=``, ``rng-builtin``,
        ``-device virtio-rng-*,rng=,max-bytes=,period=`` (no ``rng=``: builtin),
        ``-chardev socket,...,reconnect=N`` (``reconnect-ms`` in newer QEMU),
        ``-device vmgenid``.

Both inputs become the same :class:`GuestConfig`, which the rules in
:mod:`virtkit.entropy.audit` check.  Domain XML is operator data but is
still read defensively: size-capped, no DTDs or entities, parse errors
reported per file.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

from virtkit.entropy.qemuargs import QemuCommandLine, is_qemu
from virtkit.errors import ServiceError, UsageError
from virtkit.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "GuestConfig",
    "LoadProblem",
    "RngDevice",
    "from_domain_xml",
    "from_qemu_cmdline",
    "iter_libvirt_domains",
    "iter_qemu_processes",
    "iter_xml_paths",
    "load_xml_file",
]

QEMU_RNG_DEVICES = frozenset({
    "virtio-rng", "virtio-rng-pci", "virtio-rng-pci-transitional", "virtio-rng-pci-non-transitional",
    "virtio-rng-device", "virtio-rng-ccw",
})
QEMU_RNG_RANDOM_DEFAULT = "/dev/urandom"  # QEMU 7.2 rng-random default (qom-get .../filename)


@dataclass
class RngDevice:
    """One virtio-rng device and its backend.

    Attributes:
        backend: ``random``, ``egd``, ``builtin`` or something unrecognised.
        path: random: the file read; egd: the unix socket path.
        chardev: egd: ``unix``, ``tcp``, ``udp`` ...; ``mode``: connect or bind.
        host, service: egd over TCP.
        reconnect: egd client sockets: whether reconnect is configured (None: not applicable).
        reconnect_misplaced: a ``<reconnect>`` element outside ``<source>`` (libvirt ignores it).
        rate_bytes, rate_period_ms: the device rate limit, if any.
    """

    backend: str
    path: str | None = None
    chardev: str | None = None
    mode: str | None = None
    host: str | None = None
    service: str | None = None
    reconnect: bool | None = None
    reconnect_misplaced: bool = False
    rate_bytes: int | None = None
    rate_period_ms: int | None = None

    @property
    def rate(self) -> float | None:
        """Bytes per second allowed by the device rate limit (None: unlimited)."""
        if self.rate_bytes is None:
            return None
        return self.rate_bytes * 1000.0 / (self.rate_period_ms or 1000)


@dataclass
class GuestConfig:
    """What the audit knows about one guest.

    Attributes:
        name: the domain / ``-name``.
        origin: where it came from (``/etc/libvirt/qemu/vm1.xml``, ``libvirt qemu:///system``, ``pid 1234``).
        kind: ``libvirt`` (fixes are printed as XML) or ``qemu`` (as arguments).
        hypervisor: libvirt domain type (kvm, qemu, xen, ...) or ``qemu``.
        arch: guest architecture if known.
        rngs: virtio-rng devices.
        cpu_mode: libvirt cpu mode, or ``custom`` for ``-cpu MODEL``; None: hypervisor default.
        cpu_model: the named model, if any.
        cpu_on, cpu_off: features explicitly required / disabled.
        genid: a VM generation ID device is configured.
        versions: ``libvirt``/``qemu`` versions as (major, minor, micro), when known.
    """

    name: str
    origin: str
    kind: str
    hypervisor: str = "kvm"
    arch: str | None = None
    rngs: list[RngDevice] = field(default_factory=list)
    cpu_mode: str | None = None
    cpu_model: str | None = None
    cpu_on: frozenset[str] = frozenset()
    cpu_off: frozenset[str] = frozenset()
    genid: bool = False
    versions: dict[str, tuple[int, int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadProblem:
    """An input that could not be read (reported, the audit goes on)."""

    origin: str
    problem: str


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _rng_from_xml(el: ET.Element) -> RngDevice:
    backend = el.find("backend")
    rate = el.find("rate")
    dev = RngDevice(backend=(backend.get("model") or "unknown") if backend is not None else "unknown")
    if rate is not None:
        dev.rate_bytes = _int(rate.get("bytes"))
        dev.rate_period_ms = _int(rate.get("period")) or 1000
    if backend is None:
        return dev
    if dev.backend == "random":
        dev.path = (backend.text or "").strip() or None
    elif dev.backend == "egd":
        dev.chardev = backend.get("type")
        sources = backend.findall("source")
        connect = next((s for s in sources if (s.get("mode") or "connect") == "connect"), None)
        src = connect if connect is not None else (sources[0] if sources else None)
        if src is not None:
            dev.mode = src.get("mode") or "connect"
            dev.path = src.get("path")
            dev.host = src.get("host")
            dev.service = src.get("service")
            if dev.mode == "connect" and dev.chardev in ("unix", "tcp", None):
                rec = src.find("reconnect")
                dev.reconnect = rec is not None and (rec.get("enabled") or "").lower() == "yes"
                if rec is None and backend.find("reconnect") is not None:
                    dev.reconnect_misplaced = True
    return dev


def from_domain_xml(text: str | bytes, origin: str) -> GuestConfig:
    """Read one libvirt ``<domain>`` document.

    Raises:
        UsageError: not XML, a DTD/entity declaration, or not a ``<domain>``.
    """
    head = text[:4096] if isinstance(text, bytes) else text[:4096].encode("utf-8", "replace")
    if b"<!DOCTYPE" in head or b"<!ENTITY" in (text if isinstance(text, bytes) else text.encode("utf-8", "replace")):
        raise UsageError(f"{origin}: domain XML with a DTD or entities is not accepted")
    try:
        root = ET.fromstring(text)  # noqa: S314 - DTDs and entities were refused above
    except ET.ParseError as exc:
        raise UsageError(f"{origin}: not well-formed XML ({exc})") from None
    if root.tag != "domain":
        raise UsageError(f"{origin}: root element is <{root.tag}>, not <domain>")
    name = (root.findtext("name") or "").strip() or os.path.basename(origin)
    guest = GuestConfig(name=name, origin=origin, kind="libvirt", hypervisor=root.get("type") or "kvm")
    os_type = root.find("os/type")
    if os_type is not None:
        guest.arch = os_type.get("arch")
    guest.genid = root.find("genid") is not None
    for el in root.findall("devices/rng"):
        guest.rngs.append(_rng_from_xml(el))
    cpu = root.find("cpu")
    if cpu is not None:
        mode = cpu.get("mode") or ("custom" if cpu.find("model") is not None else None)
        guest.cpu_mode = mode
        model = cpu.findtext("model")
        guest.cpu_model = model.strip() if model else None
        on: set[str] = set()
        off: set[str] = set()
        for feat in cpu.findall("feature"):
            fname = (feat.get("name") or "").lower()
            policy = feat.get("policy") or "require"
            if policy in ("require", "force"):
                on.add(fname)
            elif policy in ("disable", "forbid"):
                off.add(fname)
        guest.cpu_on, guest.cpu_off = frozenset(on), frozenset(off)
    return guest


def load_xml_file(path: str, *, limits: Limits = DEFAULT_LIMITS) -> GuestConfig:
    """Read a domain XML file (at most ``max_domain_xml_bytes``).

    Raises:
        UsageError: unreadable, too large, or not a domain.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_domain_xml_bytes + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if len(data) > limits.max_domain_xml_bytes:
        raise UsageError(f"{path}: over the max_domain_xml_bytes limit of {limits.max_domain_xml_bytes}")
    return from_domain_xml(data, path)


def iter_xml_paths(paths: list[str]) -> Iterator[str]:
    """Files given directly, and ``*.xml`` directly inside given directories (sorted)."""
    for p in paths:
        if os.path.isdir(p):
            for entry in sorted(os.listdir(p)):
                full = os.path.join(p, entry)
                if entry.endswith(".xml") and os.path.isfile(full):
                    yield full
        else:
            yield p


def _version(n: int) -> tuple[int, int, int]:
    return (n // 1_000_000, (n // 1000) % 1000, n % 1000)


def iter_libvirt_domains(uri: str) -> Iterator[GuestConfig]:
    """Every domain of a live libvirt connection (read-only), via libvirt-python.

    Raises:
        ServiceError: libvirt-python is not installed, or the connection fails.
    """
    try:
        import libvirt
    except ImportError:
        raise ServiceError(
            "--connect needs libvirt-python (pip install libvirt-python, or apt install python3-libvirt); "
            "or audit the XML files in /etc/libvirt/qemu instead"
        ) from None
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise ServiceError(f"cannot connect to libvirt at {uri}: {exc}") from None
    try:
        versions = {"libvirt": _version(conn.getLibVersion())}
        try:
            if conn.getType() == "QEMU":  # getVersion() is the hypervisor's version, QEMU's only for this driver
                versions["qemu"] = _version(conn.getVersion())
        except libvirt.libvirtError:
            pass
        for dom in conn.listAllDomains(0):
            try:
                xml = dom.XMLDesc(0)
            except libvirt.libvirtError:
                continue
            guest = from_domain_xml(xml, f"libvirt {uri}")
            guest.versions = dict(versions)
            yield guest
    finally:
        conn.close()


def from_qemu_cmdline(cmd: QemuCommandLine, origin: str) -> GuestConfig:
    """Turn a parsed QEMU command line into a :class:`GuestConfig`."""
    guest = GuestConfig(name=cmd.name or origin, origin=origin, kind="qemu", hypervisor=cmd.accel or "qemu")
    base = cmd.argv[0].rsplit("/", 1)[-1] if cmd.argv else ""
    if base.startswith("qemu-system-"):
        guest.arch = base[len("qemu-system-"):]
    for dev in cmd.devices:
        driver = dev.get("driver", "")
        if driver == "vmgenid":
            guest.genid = True
        if driver not in QEMU_RNG_DEVICES:
            continue
        rng_id = dev.get("rng")
        obj = cmd.objects.get(rng_id, {}) if rng_id else {"qom-type": "rng-builtin"}
        qom = obj.get("qom-type", "unknown")
        rng = RngDevice(backend=qom.removeprefix("rng-") if qom.startswith("rng-") else qom)
        if "max-bytes" in dev:
            rng.rate_bytes = _int(dev.get("max-bytes"))
            rng.rate_period_ms = _int(dev.get("period")) or 65536  # QEMU's default period
        if rng.backend == "random":
            rng.path = obj.get("filename") or QEMU_RNG_RANDOM_DEFAULT
        elif rng.backend == "egd":
            chardev = cmd.chardevs.get(obj.get("chardev", ""), {})
            rng.chardev = "unix" if chardev.get("path") else chardev.get("backend")
            rng.path = chardev.get("path")
            rng.host = chardev.get("host")
            rng.service = chardev.get("port")
            server = chardev.get("server", "off").lower() in ("on", "", "yes", "true")
            rng.mode = "bind" if server and "server" in chardev else "connect"
            if rng.mode == "connect" and chardev.get("backend") == "socket":
                rec = chardev.get("reconnect-ms", chardev.get("reconnect", "0"))
                rng.reconnect = (_int(rec) or 0) > 0
        guest.rngs.append(rng)
    if cmd.cpu is not None:
        guest.cpu_mode = "custom"
        guest.cpu_model = cmd.cpu.model
        guest.cpu_on, guest.cpu_off = cmd.cpu.enabled, cmd.cpu.disabled
        if cmd.cpu.model in ("host", "max"):
            guest.cpu_mode = {"host": "host-passthrough", "max": "maximum"}[cmd.cpu.model]
    return guest


def iter_qemu_processes(proc_root: str = "/proc", *,
                        limits: Limits = DEFAULT_LIMITS) -> Iterator[GuestConfig | LoadProblem]:
    """Running QEMU system emulators found in ``proc_root/*/cmdline``."""
    try:
        pids = sorted(int(e) for e in os.listdir(proc_root) if e.isdigit())
    except OSError as exc:
        raise ServiceError(f"cannot list {proc_root}: {exc.strerror}") from None
    for pid in pids:
        try:
            with open(os.path.join(proc_root, str(pid), "cmdline"), "rb") as f:
                raw = f.read(limits.max_domain_xml_bytes + 1)
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if len(raw) > limits.max_domain_xml_bytes:
            yield LoadProblem(f"pid {pid}", f"command line over the max_domain_xml_bytes limit of "
                                            f"{limits.max_domain_xml_bytes}")
            continue
        cmd = QemuCommandLine.from_proc_bytes(raw)
        if is_qemu(cmd.argv):
            yield from_qemu_cmdline(cmd, f"pid {pid}")
