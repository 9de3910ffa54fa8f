"""Config discovery: every configuration a boot loader of the guest could use, best first.

Where each device is searched (pygrub's table, pygrub.md §2.2, first; then what pygrub never
looked at):

1. GRUB 2: ``/boot/grub/grub.cfg``, ``/grub/grub.cfg``, ``/boot/grub2/grub.cfg``,
   ``/grub2/grub.cfg``; on btrfs also under the default subvolume and ``@``/``root``/``@root``
   (``/@/boot/grub2/grub.cfg``, ``/@/.snapshots/1/snapshot/boot/grub2/grub.cfg``).
2. syslinux family: ``/boot/isolinux/isolinux.cfg``, ``/boot/extlinux/extlinux.conf``,
   ``/boot/extlinux.conf``, ``/extlinux/extlinux.conf``, ``/extlinux.conf``,
   ``/isolinux/isolinux.cfg``, ``/boot/syslinux/syslinux.cfg``, ``/syslinux/syslinux.cfg``,
   ``/syslinux.cfg``.
3. GRUB legacy: ``/boot/grub/menu.lst``, ``/boot/grub/grub.conf``, ``/grub/menu.lst``,
   ``/grub/grub.conf``.
4. LILO: ``/etc/lilo.conf``.
5. systemd-boot: ``/loader/loader.conf`` and ``/loader/entries/``; the same under ``/boot`` (a
   root filesystem without a separate ``/boot``).
6. EFI: ``/EFI/*/grub.cfg`` and ``/boot/efi/EFI/*/grub.cfg`` (vendor directories in name
   order, ``BOOT`` last).

Which one is used by default - the preference order (lower rank first, then device order,
then the order above):

====  ==================================================================================
rank  candidate
====  ==================================================================================
10    a real GRUB 2 grub.cfg outside the ESP (what a BIOS/PV GRUB reads; pygrub's choice)
15    the same inside a btrfs subvolume
20    a real grub.cfg on the ESP (RHEL/Fedora UEFI installs keep it there) - rank 5 with
      ``--platform efi``
30    extlinux/syslinux/isolinux
40    GRUB legacy menu.lst/grub.conf (a grub.cfg beats it, as in pygrub: Debian's
      pv-grub-menu writes both)
50    /etc/lilo.conf
60    systemd-boot with loader.conf - rank 6 with ``--platform efi``
70    /loader/entries or /boot/loader/entries without loader.conf (Fedora's BLS directory
      read as systemd-boot would)
90    an EFI stub grub.cfg that only ``search``es and ``configfile``s the real one; followed
      when it is all there is, with the platform set to ``efi``
====  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from virtkit.boot.config._support import try_read_source
from virtkit.boot.config.registry import ENGINES, ConfigCandidate
from virtkit.boot.config.source import BootFiles, DeviceInfo, normalise_path
from virtkit.errors import ConfigError, FileNotFound, NotADirectory, PathError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["candidate_for", "find_boot_configs", "summarise_candidates"]


GRUB2_PATHS = ("/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg")
EXTLINUX_PATHS = (
    "/boot/isolinux/isolinux.cfg", "/boot/extlinux/extlinux.conf", "/boot/extlinux.conf", "/extlinux/extlinux.conf",
    "/extlinux.conf", "/isolinux/isolinux.cfg", "/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg",
    "/syslinux.cfg",
)
LEGACY_PATHS = ("/boot/grub/menu.lst", "/boot/grub/grub.conf", "/grub/menu.lst", "/grub/grub.conf")
LILO_PATHS = ("/etc/lilo.conf",)
BTRFS_SUBVOLUMES = ("@", "root", "@root")


def _is_file(files: BootFiles, device: str, path: str) -> bool:
    try:
        st = files.stat(device, path)
    except PathError:
        return False
    return st is not None and not st.is_dir


def _is_dir(files: BootFiles, device: str, path: str) -> bool:
    try:
        st = files.stat(device, path)
    except PathError:
        return False
    return st is not None and st.is_dir


def _listdir(files: BootFiles, device: str, path: str) -> list[tuple[str, bool]]:
    try:
        return files.listdir(device, path)
    except (FileNotFound, NotADirectory, PathError):
        return []


def _is_stub(files: BootFiles, device: str, path: str, limits: Limits) -> bool:
    """A grub.cfg that only hands over: ``configfile`` and no menu of its own."""
    src = try_read_source(files, device, path, limits=limits)
    if src is None:
        return False
    text = src.text
    return "configfile" in text and "menuentry" not in text and "blscfg" not in text and "submenu" not in text


def _efi_configs(files: BootFiles, device: str, base: str) -> list[str]:
    """``<base>/EFI/*/grub.cfg`` (case-insensitively, vendor directories first, BOOT last)."""
    found: list[str] = []
    efi_names = [n for n, is_dir in _listdir(files, device, base or "/") if is_dir and n.lower() == "efi"]
    for efi in efi_names[:2]:
        subdirs = [n for n, is_dir in _listdir(files, device, f"{base}/{efi}") if is_dir]
        subdirs.sort(key=lambda n: (n.lower() == "boot", n.lower()))
        for sub in subdirs[:64]:
            names = [n for n, is_dir in _listdir(files, device, f"{base}/{efi}/{sub}") if not is_dir]
            for n in names:
                if n.lower() == "grub.cfg":
                    found.append(normalise_path(f"{base}/{efi}/{sub}/{n}"))
    return found


def _btrfs_roots(info: DeviceInfo) -> list[str]:
    roots: list[str] = []
    if info.default_subvolume and info.default_subvolume.strip("/"):
        roots.append("/" + info.default_subvolume.strip("/"))
    for sub in BTRFS_SUBVOLUMES:
        if f"/{sub}" not in roots:
            roots.append(f"/{sub}")
    return roots


def find_boot_configs(files: BootFiles, *, limits: Limits, platform: str | None = None) -> list[ConfigCandidate]:
    """Every boot-loader configuration on every filesystem of the guest, best first.

    Args:
        files: the guest's files.
        limits: bounds for the few files read to classify candidates (EFI stubs).
        platform: "efi" prefers configurations on the EFI system partition.

    Returns:
        candidates sorted by the preference order of the module docstring; empty if none.
    """
    ranked: list[tuple[int, int, int, ConfigCandidate]] = []
    efi = platform == "efi"

    def add(cand: ConfigCandidate, dev_index: int) -> None:
        ranked.append((cand.rank, dev_index, len(ranked), cand))

    for di, info in enumerate(files.devices()):
        dev = info.name
        for n, p in enumerate(GRUB2_PATHS, 1):
            if _is_file(files, dev, p):
                add(ConfigCandidate("grub2", dev, p, f"GRUB 2 configuration (pygrub's path #{n})", 10), di)
        if (info.fs_type or "").lower() == "btrfs":
            for root in _btrfs_roots(info):
                for p in ("/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"):
                    full = normalise_path(root + p)
                    if _is_file(files, dev, full):
                        kind = "the default subvolume" if root == "/" + info.default_subvolume.strip("/") \
                            else f"subvolume {root[1:]}"
                        add(ConfigCandidate("grub2", dev, full, f"GRUB 2 configuration in btrfs {kind}", 15), di)
        for p in EXTLINUX_PATHS:
            if _is_file(files, dev, p):
                add(ConfigCandidate("extlinux", dev, p, f"syslinux-family configuration ({p.rsplit('/', 1)[-1]})",
                                    30), di)
        for n, p in enumerate(LEGACY_PATHS, 1):
            if _is_file(files, dev, p):
                add(ConfigCandidate("grub-legacy", dev, p, f"GRUB legacy menu (pygrub's path #{9 + n}); "
                                    "a grub.cfg, if any, is preferred", 40), di)
        for p in LILO_PATHS:
            if _is_file(files, dev, p):
                add(ConfigCandidate("lilo", dev, p, "LILO configuration", 50), di)
        for base in ("/loader", "/boot/loader"):
            where = "" if base == "/loader" else " under /boot"
            if _is_file(files, dev, f"{base}/loader.conf"):
                add(ConfigCandidate("systemd-boot", dev, f"{base}/loader.conf", f"systemd-boot loader.conf{where}",
                                    6 if efi else 60, platform="efi"), di)
            elif _is_dir(files, dev, f"{base}/entries"):
                add(ConfigCandidate("systemd-boot", dev, f"{base}/entries",
                                    f"Boot Loader Specification entries{where} without loader.conf "
                                    "(read as systemd-boot would)", 70), di)
        for base in ("", "/boot/efi"):
            for p in _efi_configs(files, dev, base):
                if _is_stub(files, dev, p, limits):
                    add(ConfigCandidate("grub2", dev, p, "GRUB 2 EFI stub that hands over to another grub.cfg "
                                        "(used only when nothing better exists); platform efi", 90,
                                        platform="efi", stub=True), di)
                else:
                    add(ConfigCandidate("grub2", dev, p, "GRUB 2 configuration on the EFI system partition",
                                        5 if efi else 20, platform="efi"), di)
    ranked.sort(key=lambda t: (t[0], t[1], t[2]))
    return [t[3] for t in ranked]


def candidate_for(files: BootFiles, device: str, path: str, *, limits: Limits) -> ConfigCandidate:
    """A candidate for a configuration the operator named (``--config DEVICE:PATH``).

    The loader is chosen by file name (grub.cfg, menu.lst, extlinux.conf, lilo.conf,
    loader.conf, a ``loader/entries`` directory), else by the engine whose probe is most
    confident about the content.

    Raises:
        FileNotFound: no such file or device.
        ConfigError: the file matches no configuration language.
        LimitExceeded: the file is larger than ``max_config_bytes``.
    """
    p = normalise_path(path)
    base = p.rsplit("/", 1)[-1].lower()
    if p.rstrip("/").endswith("/loader/entries") and _is_dir(files, device, p):
        return ConfigCandidate("systemd-boot", device, p.rstrip("/"), "named by the operator")
    if p.rstrip("/").endswith("/loader") and _is_dir(files, device, p):
        return ConfigCandidate("systemd-boot", device, p.rstrip("/") + "/loader.conf", "named by the operator")
    src = try_read_source(files, device, p, limits=limits)
    if src is None:
        raise FileNotFound(f"({device}){p}: no such configuration file", path=p)
    platform = "efi" if "/efi/" in p.lower() else None
    for e in ENGINES:
        if base in e.basenames:
            return ConfigCandidate(e.loader, device, p, f"named by the operator ({base})", platform=platform)
    scores = sorted(((e.probe(src.text), i, e.loader) for i, e in enumerate(ENGINES)), key=lambda t: (-t[0], t[1]))
    best, _i, loader = scores[0]
    if best < 30:
        shown = ", ".join(f"{name} {score}" for score, _j, name in scores)
        raise ConfigError(f"({device}){sanitize_text(p)}: not recognisable as a boot-loader configuration "
                          f"(confidence: {shown})")
    return ConfigCandidate(loader, device, p, f"named by the operator; content looks like {loader}",
                           platform=platform)


def summarise_candidates(candidates: Sequence[ConfigCandidate]) -> list[str]:
    """One sanitised line per candidate, for ``explain``."""
    return [f"{c.loader:<13} {c.display}  - {sanitize_text(c.why)}" for c in candidates]
