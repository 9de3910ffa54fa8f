"""``virtkit entropy audit``: find guests whose RNG set-up can stall or wedge them, and say what to use.

References:
    entropy.md §1.3-§1.4 (boot-time seeding, RDRAND), §2.1 (QEMU backends and
        their failure modes), §2.3 (libvirt ``<rng>``, ``<genid/>``, versions:
        ``builtin`` needs libvirt 6.1.0 and QEMU 4.2), §3.8 (an EGD restart
        wedges the guest), §5 F1/F2 (the findings and the generated config).
    The RDRAND column of :data:`RDRAND_FAMILIES` was checked against QEMU 7.2's
        own model definitions (``query-cpu-model-expansion``; the differential
        test re-checks it against the installed QEMU).

Findings (``code``: severity):

=====================  ========  ============================================================
no-rng                 warning   no virtio-rng device (Xen guests: info, there is no transport)
random-dev-random      warning   ``random`` backend on /dev/random
random-hwrng           error     ``random`` backend on /dev/hwrng (QEMU aborts on read errors)
egd-no-reconnect       error     EGD client socket without reconnect
egd-reconnect-ignored  error     ``<reconnect>`` outside ``<source>``, which libvirt ignores
egd-not-accounted      info      EGD socket is not the per-guest socket of our service
rate-below-floor       warning   ``<rate>``/``max-bytes`` allows less than the floor (bytes/s)
cpu-no-rdrand          warning   the guest CPU model has no RDRAND (boot seeding waits for jitter)
cpu-rdrand-unknown     info      the model is not in the table
no-genid               info      no ``<genid/>``/vmgenid (clones and restored snapshots do not reseed)
builtin-unsupported    info      libvirt/QEMU too old for ``builtin``; the fix uses /dev/urandom
=====================  ========  ============================================================

The fix (F2): ``rng-builtin`` by default; ``rng-egd`` on the guest's own
socket of ``virtkit entropy serve`` (with reconnect) when accounting is
wanted; the rate floor only where a lower rate was set; ``<genid/>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from virtkit.entropy.domains import GuestConfig, LoadProblem, RngDevice
from virtkit.entropy.identity import display_name

__all__ = [
    "DEFAULT_GUEST_DIR",
    "DEFAULT_RATE_FLOOR",
    "RDRAND_FAMILIES",
    "AuditOptions",
    "Finding",
    "GuestReport",
    "audit_guest",
    "cpu_has_rdrand",
    "fix_for",
    "render_human",
    "render_json",
]

DEFAULT_GUEST_DIR = "/run/virtkit/entropy/guests"
DEFAULT_RATE_FLOOR = 1024  # bytes/s; entropy.md §5 F1: "suggest >= 1 KiB/s"
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

# QEMU x86 CPU model families (the part before the first "-") -> has RDRAND.
RDRAND_FAMILIES: dict[str, bool] = {
    **dict.fromkeys(
        ("Broadwell", "Cascadelake", "Cooperlake", "Denverton", "Dhyana", "EPYC", "Haswell", "Icelake",
         "IvyBridge", "KnightsMill", "Skylake", "Snowridge", "SapphireRapids", "GraniteRapids", "SierraForest",
         "ClearwaterForest", "YongFeng"), True),
    **dict.fromkeys(
        ("486", "Conroe", "Nehalem", "Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4", "Opteron_G5",
         "Penryn", "SandyBridge", "Westmere", "athlon", "core2duo", "coreduo", "kvm32", "kvm64", "n270",
         "pentium", "pentium2", "pentium3", "phenom", "qemu32", "qemu64", "base"), False),
}
X86_ARCHES = frozenset({"x86_64", "i686", "i386", "x86"})


@dataclass(frozen=True)
class Finding:
    """One problem with one guest."""

    code: str
    severity: str
    message: str


@dataclass
class AuditOptions:
    """Knobs of the audit.

    Attributes:
        rate_floor: bytes/s below which a device rate limit is reported.
        accounting: the fix points guests at our per-guest sockets (EGD) instead of builtin.
        guest_dir: where those sockets live.
        host_rdrand: whether the host CPU has RDRAND (for host-model/passthrough; None: unknown).
    """

    rate_floor: int = DEFAULT_RATE_FLOOR
    accounting: bool = False
    guest_dir: str = DEFAULT_GUEST_DIR
    host_rdrand: bool | None = None


@dataclass
class GuestReport:
    guest: GuestConfig
    findings: list[Finding] = field(default_factory=list)

    @property
    def worst(self) -> str | None:
        if not self.findings:
            return None
        return min((f.severity for f in self.findings), key=SEVERITY_ORDER.__getitem__)


def cpu_has_rdrand(guest: GuestConfig, host_rdrand: bool | None) -> bool | None:
    """Does the guest's virtual CPU offer RDRAND?  None: cannot tell."""
    if "rdrand" in guest.cpu_off:
        return False
    if "rdrand" in guest.cpu_on:
        return True
    mode = guest.cpu_mode
    if mode is None and guest.hypervisor in ("xen", "lxc"):
        return host_rdrand  # Xen passes the host's CPUID through unless masked; containers are the host
    if mode in ("host-passthrough", "host-model", "maximum"):
        return host_rdrand if mode != "maximum" else True
    model = guest.cpu_model
    if not model:
        return False  # QEMU's default x86 model is qemu64, which has no RDRAND
    if model in ("host", "max"):
        return host_rdrand if model == "host" else True
    return RDRAND_FAMILIES.get(model.split("-", 1)[0])


def _rng_findings(guest: GuestConfig, rng: RngDevice, opts: AuditOptions) -> list[Finding]:
    out: list[Finding] = []
    if rng.backend == "random":
        path = rng.path or "/dev/random"
        if path == "/dev/random":
            out.append(Finding("random-dev-random", "warning",
                               "random backend reads /dev/random: on pre-5.6 host kernels a greedy guest drains "
                               "the host pool; use builtin or /dev/urandom"))
        elif path == "/dev/hwrng":
            out.append(Finding("random-hwrng", "error",
                               "random backend reads /dev/hwrng: QEMU aborts on any read error from it, and the "
                               "device serves one reader; feed hardware bytes through an EGD service instead"))
    elif rng.backend == "egd":
        if rng.mode == "connect" and rng.reconnect is False:
            if rng.reconnect_misplaced:
                out.append(Finding("egd-reconnect-ignored", "error",
                                   "<reconnect> sits outside <source>, where libvirt ignores it: move it inside "
                                   "<source>"))
            else:
                out.append(Finding("egd-no-reconnect", "error",
                                   "EGD socket without reconnect: when the EGD service restarts, the device stays "
                                   "disconnected and the guest's hwrng readers hang (entropy.md §3.8)"))
        if opts.accounting:
            want = f"{opts.guest_dir.rstrip('/')}/{guest.name}.sock"
            if rng.path != want:
                out.append(Finding("egd-not-accounted", "info",
                                   f"EGD socket is {rng.path or rng.host or '?'}, not this guest's accounted socket "
                                   f"{want}"))
    rate = rng.rate
    if rate is not None and rate < opts.rate_floor:
        out.append(Finding("rate-below-floor", "warning",
                           f"rate limit of {rate:.0f} bytes/s is below the floor of {opts.rate_floor} bytes/s "
                           "(low rates copied from 2013-era advice starve FIPS guests at boot)"))
    return out


def audit_guest(guest: GuestConfig, opts: AuditOptions | None = None) -> GuestReport:
    """Apply every rule to one guest."""
    opts = opts or AuditOptions()
    report = GuestReport(guest)
    add = report.findings.append
    if not guest.rngs:
        if guest.hypervisor == "xen":
            add(Finding("no-rng", "info", "Xen guests have no virtio-rng transport; make sure the CPU offers "
                                          "RDRAND, or feed the guest over the network (EGD)"))
        else:
            add(Finding("no-rng", "warning", "no virtio-rng device: the guest seeds from RDRAND and CPU jitter "
                                             "only; legacy (EL7) guests can block on /dev/random"))
    for rng in guest.rngs:
        report.findings.extend(_rng_findings(guest, rng, opts))
    if guest.arch is None or guest.arch in X86_ARCHES:
        has = cpu_has_rdrand(guest, opts.host_rdrand)
        what = f"CPU {guest.cpu_model or guest.cpu_mode}" if guest.cpu_model or guest.cpu_mode \
            else "the default CPU model (qemu64)"
        if has is False:
            add(Finding("cpu-no-rdrand", "warning",
                        f"{what} has no RDRAND: boot-time seeding waits for jitter or virtio-rng "
                        "(use host-model, a model from IvyBridge/EPYC on, or require the rdrand feature)"))
        elif has is None:
            add(Finding("cpu-rdrand-unknown", "info", f"cannot tell whether {what} offers RDRAND"))
    if not guest.genid and guest.hypervisor != "xen":
        add(Finding("no-genid", "info", "no VM generation ID: clones and restored snapshots of 5.18+ guests do "
                                        "not reseed their RNG (add <genid/> or -device vmgenid)"))
    if not _builtin_supported(guest):
        add(Finding("builtin-unsupported", "info",
                    "libvirt < 6.1.0 or QEMU < 4.2 here: no builtin backend; the fix uses /dev/urandom"))
    report.findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.code))
    return report


def _builtin_supported(guest: GuestConfig) -> bool:
    lv = guest.versions.get("libvirt")
    qv = guest.versions.get("qemu")
    return not ((lv is not None and lv < (6, 1, 0)) or (qv is not None and qv < (4, 2, 0)))


def fix_for(report: GuestReport, opts: AuditOptions | None = None) -> str | None:
    """The configuration to use instead (libvirt XML or QEMU arguments), or None if nothing to fix."""
    opts = opts or AuditOptions()
    guest = report.guest
    codes = {f.code for f in report.findings if f.severity != "info" or f.code in ("no-genid", "egd-not-accounted")}
    rng_codes = codes - {"cpu-no-rdrand", "no-genid"}
    if not codes:
        return None
    rate: tuple[int, int] | None = None  # (bytes, period ms): raise a low rate to the floor, keep an adequate one
    if "rate-below-floor" in codes:
        rate = (opts.rate_floor, 1000)
    else:
        limited = next((r for r in guest.rngs if r.rate_bytes is not None), None)
        if limited is not None and limited.rate_bytes is not None:
            rate = (limited.rate_bytes, limited.rate_period_ms or 1000)
    sock = f"{opts.guest_dir.rstrip('/')}/{guest.name}.sock"
    builtin = _builtin_supported(guest)
    # A guest already on EGD keeps its daemon (mediation was chosen); it only needs reconnect.
    keep = next((r for r in guest.rngs if r.backend == "egd" and r.mode == "connect"), None)
    if opts.accounting:
        keep = None
    lines: list[str] = []
    unix_path: str | None = None
    tcp: tuple[str, str] | None = None
    if opts.accounting or (keep is not None and keep.path and keep.chardev in ("unix", None)):
        unix_path = sock if opts.accounting else ((keep.path if keep else None) or sock)
    elif keep is not None and keep.host and keep.chardev != "udp":  # libvirt "tcp"; QEMU "socket"
        tcp = (keep.host, keep.service or "")
    if guest.kind == "libvirt":
        if rng_codes:
            lines += libvirt_rng(rate=rate, unix_path=unix_path, tcp=tcp, builtin=builtin)
        if "no-genid" in codes:
            lines.append("<genid/>   <!-- directly inside <domain> -->")
        if "cpu-no-rdrand" in codes:
            lines.append("<cpu mode='host-model'/>   <!-- or keep the model and add "
                         "<feature policy='require' name='rdrand'/> -->")
        return "\n".join(lines)
    args: list[str] = []
    if rng_codes:
        args += qemu_rng(rate=rate, unix_path=unix_path, tcp=tcp, builtin=builtin)
    if "no-genid" in codes:
        args.append("-device vmgenid")
    if "cpu-no-rdrand" in codes:
        model = guest.cpu_model if guest.cpu_model and guest.cpu_model not in ("host", "max") else "qemu64"
        args.append(f"-cpu host   (or: -cpu {model},+rdrand where the host has it)")
    return "\n".join(args) if args else None


def libvirt_rng(*, rate: tuple[int, int] | None, unix_path: str | None, tcp: tuple[str, str] | None,
                builtin: bool) -> list[str]:
    """A libvirt ``<rng>`` element: EGD on a unix socket or TCP (with reconnect), else builtin
    (or /dev/urandom where libvirt/QEMU are too old for builtin)."""
    lines = ["<rng model='virtio'>"]
    if rate is not None:
        lines.append(f"  <rate bytes='{rate[0]}' period='{rate[1]}'/>")
    if unix_path is not None:
        lines += ["  <backend model='egd' type='unix'>",
                  f"    <source mode='connect' path={_attr(unix_path)}>",
                  "      <reconnect enabled='yes' timeout='1'/>",
                  "    </source>",
                  "  </backend>"]
    elif tcp is not None:
        lines += ["  <backend model='egd' type='tcp'>",
                  f"    <source mode='connect' host={_attr(tcp[0])} service={_attr(tcp[1])}>",
                  "      <reconnect enabled='yes' timeout='1'/>",
                  "    </source>",
                  "  </backend>"]
    elif builtin:
        lines.append("  <backend model='builtin'/>")
    else:
        lines.append("  <backend model='random'>/dev/urandom</backend>")
    lines.append("</rng>")
    return lines


def qemu_rng(*, rate: tuple[int, int] | None, unix_path: str | None, tcp: tuple[str, str] | None,
             builtin: bool) -> list[str]:
    """The QEMU arguments for the same device (``reconnect=1`` on the EGD socket)."""
    dev = "-device virtio-rng-pci,rng=rng0" + (f",max-bytes={rate[0]},period={rate[1]}" if rate is not None else "")
    where = (f"path={unix_path.replace(',', ',,')}" if unix_path is not None
             else f"host={tcp[0]},port={tcp[1]}" if tcp is not None else None)
    if where is not None:
        return [f"-chardev socket,id=chrrng0,{where},reconnect=1", "-object rng-egd,id=rng0,chardev=chrrng0", dev]
    if builtin:
        return ["-object rng-builtin,id=rng0", dev]
    return ["-object rng-random,id=rng0,filename=/dev/urandom", dev]


def generate_config(name: str, *, kind: str, accounting: bool = False, guest_dir: str = DEFAULT_GUEST_DIR,
                    rate: tuple[int, int] | None = None, genid: bool = True, builtin: bool = True) -> str:
    """F2, the generator: the RNG configuration for a new guest ``name``.

    ``rng-builtin`` by default (QEMU's own getrandom, no daemon: the best choice unless
    something must be accounted or limited); with ``accounting`` ``rng-egd`` on the guest's
    own socket of ``virtkit entropy serve`` with reconnect; ``rate`` as (bytes, period ms);
    ``<genid/>`` so clones and restored snapshots reseed.  ``kind``: ``libvirt`` (XML) or
    ``qemu`` (arguments).
    """
    if kind not in ("libvirt", "qemu"):
        raise ValueError(f"kind must be libvirt or qemu, not {kind!r}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a usable guest name: {name!r}")
    unix_path = f"{guest_dir.rstrip('/')}/{name}.sock" if accounting else None
    if kind == "libvirt":
        lines = libvirt_rng(rate=rate, unix_path=unix_path, tcp=None, builtin=builtin)
        if genid:
            lines.append("<genid/>   <!-- directly inside <domain> -->")
        return "\n".join(lines)
    args = qemu_rng(rate=rate, unix_path=unix_path, tcp=None, builtin=builtin)
    if genid:
        args.append("-device vmgenid")
    return "\n".join(args)


def _attr(value: str) -> str:
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render_human(reports: list[GuestReport], problems: list[LoadProblem], *, fix: bool,
                 opts: AuditOptions | None = None) -> str:
    """The operator's view: one block per guest, a summary line."""
    out: list[str] = []
    for r in reports:
        g = r.guest
        out.append(f"{display_name(g.name)}  ({g.origin})")
        if not r.findings:
            out.append("  ok")
        for f in r.findings:
            out.append(f"  {f.severity.upper():<7} {f.code}: {f.message}")
        if fix:
            text = fix_for(r, opts)
            if text:
                out.append("  fix:")
                out.extend("    " + line for line in text.splitlines())
        out.append("")
    for p in problems:
        out.append(f"{p.origin}: could not be read: {p.problem}")
    counts = {s: sum(1 for r in reports for f in r.findings if f.severity == s) for s in SEVERITY_ORDER}
    out.append(f"{_count(len(reports), 'guest')}: {_count(counts['error'], 'error')}, "
               f"{_count(counts['warning'], 'warning')}, {_count(counts['info'], 'note')}"
               + (f", {_count(len(problems), 'unreadable input')}" if problems else ""))
    return "\n".join(out) + "\n"


def render_json(reports: list[GuestReport], problems: list[LoadProblem], *, opts: AuditOptions | None = None) -> str:
    """Machine-readable output (``--json``); ``fix`` is included for every guest that needs one."""
    guests: list[dict[str, Any]] = []
    for r in reports:
        g = r.guest
        guests.append({
            "name": g.name,
            "origin": g.origin,
            "kind": g.kind,
            "rng": [{"backend": d.backend, "path": d.path, "reconnect": d.reconnect, "rate": d.rate}
                    for d in g.rngs],
            "findings": [{"code": f.code, "severity": f.severity, "message": f.message} for f in r.findings],
            "fix": fix_for(r, opts),
        })
    counts = {s: sum(1 for r in reports for f in r.findings if f.severity == s) for s in SEVERITY_ORDER}
    return json.dumps({"version": 1, "guests": guests,
                       "unreadable": [{"origin": p.origin, "problem": p.problem} for p in problems],
                       "summary": {"guests": len(reports), **counts}}, indent=2) + "\n"
