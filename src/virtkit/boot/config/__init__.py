"""Stage 4 of the boot pipeline: find the guest's boot-loader configuration and interpret it.

``find_boot_configs(files, limits=...)`` looks at every filesystem the guest has, in GRUB's
device order, for every configuration file a boot loader could use, and returns them as
:class:`ConfigCandidate` s, best first.  ``load_menu(files, candidate, ...)`` hands one to
its engine and returns the :class:`~virtkit.boot.config.model.BootMenu`.

Engines (a table, :data:`ENGINES`, not an if-chain):

============== ========================================= =====================================
loader         module                                    files
============== ========================================= =====================================
grub2          ``config/grub2`` (imported lazily)        grub.cfg
grub-legacy    :mod:`~virtkit.boot.config.grub_legacy`   menu.lst, grub.conf
extlinux       :mod:`~virtkit.boot.config.extlinux`      extlinux.conf, syslinux.cfg, isolinux.cfg
lilo           :mod:`~virtkit.boot.config.lilo`          lilo.conf
systemd-boot   :mod:`~virtkit.boot.config.sdboot`        /loader/loader.conf, /loader/entries
============== ========================================= =====================================

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
5. systemd-boot: ``/loader/loader.conf`` and ``/loader/entries/``.
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
70    /loader/entries without loader.conf (Fedora's BLS directory read as systemd-boot would)
90    an EFI stub grub.cfg that only ``search``es and ``configfile``s the real one; followed
      when it is all there is, with the platform set to ``efi``
====  ==================================================================================
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from virtkit.boot.config import extlinux, extlinux_boot, grub_legacy, lilo, sdboot
from virtkit.boot.config._support import find_device, try_read_source
from virtkit.boot.config.model import BootEntry, BootMenu
from virtkit.boot.config.source import BootFiles, DeviceInfo, MemoryFiles, normalise_path
from virtkit.errors import (
    ConfigError,
    FileNotFound,
    IsADirectory,
    LimitExceeded,
    NotADirectory,
    PathError,
    SelectionError,
    UsageError,
)
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = [
    "ENGINES",
    "FLAVOURS",
    "PLATFORMS",
    "ConfigCandidate",
    "ConfigEngine",
    "GuestMenu",
    "LoadRequest",
    "MenuOptions",
    "candidate_for",
    "check_options",
    "discover_menu",
    "evaluate_edited_entry",
    "find_boot_configs",
    "load_config_file",
    "load_guest_menu",
    "load_menu",
    "parse_config_spec",
    "summarise_candidates",
]

log = logging.getLogger(__name__)

PLATFORMS = ("pc", "xen", "efi")
FLAVOURS = ("upstream", "fedora")


@dataclass(frozen=True)
class ConfigCandidate:
    """One configuration a boot loader could use.

    Attributes:
        loader: "grub2", "grub-legacy", "extlinux", "lilo" or "systemd-boot".
        device: GRUB device name of the filesystem holding it.
        path: absolute path there ("/loader/entries" names the systemd-boot directory).
        why: one line saying what it is and why it ranks where it does.
        rank: preference (lower first), see the module docstring.
        platform: "efi" when the file sits on an EFI system partition, else None.
        stub: an EFI stub that only hands over to another grub.cfg.
    """

    loader: str
    device: str
    path: str
    why: str
    rank: int = 0
    platform: str | None = None
    stub: bool = False

    @property
    def display(self) -> str:
        return sanitize_text(f"({self.device}){self.path}")


@dataclass(frozen=True)
class MenuOptions:
    """Operator choices that change how a configuration is interpreted.

    Attributes:
        platform: "pc", "xen" or "efi" (GRUB's ``grub_platform``; also the discovery preference).
        flavour: GRUB 2 default rules, "upstream" or "fedora" (None: decided by the config).
        variables: GRUB variables to set before the config runs (``--set VAR=VALUE``).
    """

    platform: str | None = None
    flavour: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadRequest:
    """Everything an engine gets: where the configuration is and how to read it."""

    files: BootFiles
    device: str | None
    path: str
    limits: Limits
    options: MenuOptions
    candidate: ConfigCandidate | None = None


Loader = Callable[[LoadRequest], BootMenu]


Evaluator = Callable[[BootFiles, BootMenu, tuple[int, ...], str, Limits], BootEntry]


@dataclass(frozen=True)
class ConfigEngine:
    """A configuration language: how to load it, recognise it, and re-run an edited entry."""

    loader: str
    load: Loader
    probe: Callable[[str], int]
    basenames: tuple[str, ...]
    evaluate: Evaluator


def _simple(fn: Callable[..., BootMenu]) -> Loader:
    def load(req: LoadRequest) -> BootMenu:
        return fn(req.files, req.device, req.path, limits=req.limits)

    return load


def _simple_eval(fn: Callable[..., BootEntry]) -> Evaluator:
    def evaluate(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, limits: Limits) -> BootEntry:
        item = menu.item_at(path)
        assert isinstance(item, BootEntry)
        return fn(files, menu, item, body, limits=limits)

    return evaluate


def _eval_grub2(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, limits: Limits) -> BootEntry:
    from virtkit.boot.config.grub2 import evaluate_entry_body

    return evaluate_entry_body(files, menu, path, body, limits=limits)


def _load_grub2(req: LoadRequest) -> BootMenu:
    from virtkit.boot.config.grub2 import Grub2Options, load_grub2_menu

    options, cand = req.options, req.candidate
    platform = options.platform or (cand.platform if cand is not None else None) or "pc"
    grub_options = Grub2Options(platform=platform, flavour=options.flavour or "auto",
                                variables=dict(options.variables))
    return load_grub2_menu(req.files, req.device, req.path, limits=req.limits, options=grub_options)


def _probe_grub2(text: str) -> int:
    head = text[:65536]
    score = 0
    for word, weight in (("menuentry", 50), ("submenu", 30), ("blscfg", 50), ("insmod", 20), ("search ", 20),
                         ("configfile", 20), ("set root=", 20), ("linux16 ", 20)):
        if word in head:
            score += weight
    return min(score, 100)


ENGINES: tuple[ConfigEngine, ...] = (
    ConfigEngine("grub2", _load_grub2, _probe_grub2, ("grub.cfg",), _eval_grub2),
    ConfigEngine("grub-legacy", _simple(grub_legacy.load_grub_legacy_menu), grub_legacy.probe_grub_legacy,
                 ("menu.lst", "grub.conf"), _simple_eval(grub_legacy.evaluate_grub_legacy_body)),
    ConfigEngine("extlinux", _simple(extlinux.load_extlinux_menu), extlinux.probe_extlinux,
                 ("extlinux.conf", "syslinux.cfg", "isolinux.cfg", "pxelinux.cfg"),
                 _simple_eval(extlinux_boot.evaluate_extlinux_body)),
    ConfigEngine("lilo", _simple(lilo.load_lilo_menu), lilo.probe_lilo, ("lilo.conf",),
                 _simple_eval(lilo.evaluate_lilo_body)),
    ConfigEngine("systemd-boot", _simple(sdboot.load_sdboot_menu), sdboot.probe_sdboot, ("loader.conf", "entries"),
                 _simple_eval(sdboot.evaluate_sdboot_body)),
)


def _engine(loader: str) -> ConfigEngine:
    for e in ENGINES:
        if e.loader == loader:
            return e
    raise ConfigError(f"unknown boot loader {sanitize_text(loader)!r}; known: {', '.join(e.loader for e in ENGINES)}")


# ----------------------------------------------------------------------------- discovery

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
        has_conf = _is_file(files, dev, "/loader/loader.conf")
        has_entries = _is_dir(files, dev, "/loader/entries")
        if has_conf:
            add(ConfigCandidate("systemd-boot", dev, "/loader/loader.conf", "systemd-boot loader.conf",
                                6 if efi else 60, platform="efi"), di)
        elif has_entries:
            add(ConfigCandidate("systemd-boot", dev, "/loader/entries",
                                "Boot Loader Specification entries without loader.conf (read as systemd-boot would)",
                                70), di)
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
        return ConfigCandidate("systemd-boot", device, "/loader/entries", "named by the operator")
    if p.rstrip("/").endswith("/loader") and _is_dir(files, device, p):
        return ConfigCandidate("systemd-boot", device, "/loader/loader.conf", "named by the operator")
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


def load_menu(files: BootFiles, candidate: ConfigCandidate, *, limits: Limits,
              options: MenuOptions | None = None) -> BootMenu:
    """Interpret one configuration with its engine.

    Args:
        files: the guest's files.
        candidate: from :func:`find_boot_configs` or :func:`candidate_for`.
        limits: bounds for the engine.
        options: platform, GRUB flavour and variable overrides.

    Returns:
        the boot menu with its default and explanation trail.

    Raises:
        ConfigError: the configuration is unusable (syntax, include loops, no interpreter).
        FileNotFound: the configuration vanished.
        LimitExceeded: a bound was broken.
    """
    engine = _engine(candidate.loader)
    opts = options or MenuOptions()
    log.debug("loading %r with %s", candidate.display, engine.loader)
    return engine.load(LoadRequest(files, candidate.device, candidate.path, limits, opts, candidate))


def summarise_candidates(candidates: Sequence[ConfigCandidate]) -> list[str]:
    """One sanitised line per candidate, for ``explain``."""
    return [f"{c.loader:<13} {c.display}  - {sanitize_text(c.why)}" for c in candidates]



# ----------------------------------------------------------------------------- whole guest


@dataclass(frozen=True)
class GuestMenu:
    """The menu a guest boots from, the configuration it came from, and every one found."""

    menu: BootMenu
    used: ConfigCandidate
    candidates: tuple[ConfigCandidate, ...]


def check_options(options: MenuOptions) -> None:
    """Raises UsageError for an unknown platform or flavour."""
    if options.platform is not None and options.platform not in PLATFORMS:
        raise UsageError(f"--platform {sanitize_text(options.platform)}: expected one of {', '.join(PLATFORMS)}")
    if options.flavour is not None and options.flavour not in FLAVOURS:
        raise UsageError(f"--flavour {sanitize_text(options.flavour)}: expected one of {', '.join(FLAVOURS)}")


def parse_config_spec(files: BootFiles, spec: str) -> tuple[str, str]:
    """``--config`` value -> (device, path).

    Accepts ``DEVICE:PATH`` (``hd0,msdos1:/grub/menu.lst``), GRUB's ``(DEVICE)/PATH``, or a
    bare ``PATH`` (the first device, in GRUB order, that has it).

    Raises:
        UsageError: an unknown device, or a bare path no device has.
    """
    devices = files.devices()
    names = ", ".join(d.name for d in devices) or "none"
    if spec.startswith("("):
        close = spec.find(")")
        if close > 0:
            dev, path = spec[1:close], spec[close + 1 :] or "/"
            info = find_device(files, dev)
            if info is None:
                raise UsageError(f"--config {sanitize_text(spec)}: no device ({sanitize_text(dev)}); devices: {names}")
            return info.name, normalise_path(path)
    if ":" in spec:
        dev, _sep, path = spec.rpartition(":")
        info = find_device(files, dev)
        if info is not None:
            return info.name, normalise_path(path)
        if not spec.startswith("/"):
            raise UsageError(f"--config {sanitize_text(spec)}: no device {sanitize_text(dev)!r}; devices: {names}")
    path = normalise_path(spec)
    for info in devices:
        try:
            if files.stat(info.name, path) is not None:
                return info.name, path
        except PathError:
            continue
    raise UsageError(f"--config {sanitize_text(spec)}: no device has {sanitize_text(path)} (devices: {names})")


def discover_menu(files: BootFiles, *, limits: Limits, options: MenuOptions | None = None,
                  config: str | None = None) -> GuestMenu:
    """Find the guest's configurations, pick the preferred one and interpret it.

    When the preferred configuration cannot be used (a configuration error, a missing file)
    or yields no entries at all, the next candidate is tried, and the menu says so in its
    warnings; a broken limit always stops (hostile input must not be papered over).

    Args:
        files: the guest's files.
        limits: bounds.
        options: platform, flavour, GRUB variables.
        config: ``--config`` (see :func:`parse_config_spec`); only that file is used.

    Returns:
        the menu, the candidate used and all candidates found.

    Raises:
        ConfigError: no configuration found, or none usable.
        UsageError: bad ``--config``, ``--platform`` or ``--flavour``.
        LimitExceeded: a bound was broken.
    """
    opts = options or MenuOptions()
    check_options(opts)
    if config is not None:
        device, path = parse_config_spec(files, config)
        cand = candidate_for(files, device, path, limits=limits)
        return GuestMenu(load_menu(files, cand, limits=limits, options=opts), cand, (cand,))
    candidates = tuple(find_boot_configs(files, limits=limits, platform=opts.platform))
    if not candidates:
        if not files.devices():
            raise ConfigError("the guest has no readable filesystem, so no boot-loader configuration")
        devs = ", ".join(f"({d.name}) {d.fs_type or '?'}" for d in files.devices())
        raise ConfigError(f"no boot-loader configuration found on the guest's filesystems ({devs}); looked for "
                          "grub.cfg, menu.lst/grub.conf, extlinux.conf/syslinux.cfg/isolinux.cfg, /etc/lilo.conf, "
                          "/loader (systemd-boot) and /EFI/*/grub.cfg")
    skipped: list[str] = []
    empty: list[tuple[BootMenu, ConfigCandidate, str]] = []
    first_error: Exception | None = None
    for cand in candidates:
        try:
            menu = load_menu(files, cand, limits=limits, options=opts)
        except LimitExceeded:
            raise
        except (ConfigError, FileNotFound, IsADirectory, NotADirectory) as exc:
            first_error = first_error or exc
            skipped.append(f"{cand.display} ({cand.loader}) could not be used: {exc}")
            continue
        if menu.items:
            notes = [*skipped, *(note for _m, _c, note in empty)]
            if notes:
                menu = dataclasses.replace(menu, warnings=(*notes, *menu.warnings))
            return GuestMenu(menu, cand, candidates)
        empty.append((menu, cand, f"{cand.display} ({cand.loader}) has no menu entries; tried the next configuration"))
    if empty:
        menu, cand, _note = empty[0]
        notes = [*skipped, *(note for _m, _c, note in empty[1:])]
        return GuestMenu(dataclasses.replace(menu, warnings=(*notes, *menu.warnings)), cand, candidates)
    assert first_error is not None
    raise first_error


def load_guest_menu(files: BootFiles, *, limits: Limits, config: str | None = None, platform: str | None = None,
                    flavour: str | None = None, variables: Mapping[str, str] | None = None) -> BootMenu:
    """The boot menu of a guest, as its own boot loader would build it (see :func:`discover_menu`).

    Raises:
        ConfigError, UsageError, LimitExceeded: as :func:`discover_menu`.
    """
    opts = MenuOptions(platform=platform, flavour=flavour, variables=dict(variables or {}))
    return discover_menu(files, limits=limits, options=opts, config=config).menu


def load_config_file(path: str, data: bytes, *, limits: Limits, platform: str | None = None,
                     flavour: str | None = None) -> BootMenu:
    """Interpret a configuration file given as bytes (pygrub's ``--isconfig``).

    The file is seen as ``PATH`` on a device named ``host``; files it refers to do not exist.

    Raises:
        ConfigError: the content is no configuration language we know.
        LimitExceeded: ``data`` is larger than ``max_config_bytes``.
    """
    limits.check("max_config_bytes", len(data), path)
    p = normalise_path(path)
    files = MemoryFiles({"host": {p: data}})
    opts = MenuOptions(platform=platform, flavour=flavour)
    check_options(opts)
    cand = candidate_for(files, "host", p, limits=limits)
    return load_menu(files, cand, limits=limits, options=opts)


def evaluate_edited_entry(files: BootFiles, menu: BootMenu, path: tuple[int, ...], body: str, *,
                          limits: Limits) -> BootEntry:
    """Re-run an entry whose body the operator edited in the interactive menu.

    ``body`` is what :attr:`BootEntry.body` held, edited: GRUB's script block, GRUB legacy's
    command lines, syslinux's command line, a lilo section, a BLS entry's text.

    Raises:
        SelectionError: ``path`` is not an entry of ``menu``.
        ConfigError: the edited text cannot be used.
        LimitExceeded: a bound was broken.
    """
    try:
        item = menu.item_at(path)
    except IndexError:
        raise SelectionError(f"no menu entry at {'>'.join(map(str, path))}") from None
    if not isinstance(item, BootEntry):
        raise SelectionError(f"'{item.title_display}' is a submenu, not an entry")
    limits.check("max_config_bytes", len(body.encode("utf-8", "surrogateescape")), "edited entry")
    return _engine(menu.loader).evaluate(files, menu, path, body, limits)
