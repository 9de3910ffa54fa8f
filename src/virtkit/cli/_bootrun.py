"""The privileged side of a boot: open images, run the worker, choose, write the files.

Shared by ``virtkit-pygrub`` and ``virtkit boot``.  This process keeps its
privileges only to open the images read-only and to create the output files;
all guest parsing happens behind :func:`open_channel` (a sandboxed worker
whenever we run as root, unless ``--no-isolate``).  Everything the worker
returns is validated (:mod:`virtkit.boot.worker.codec`) and the output record
is built here from the files *we* created.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from virtkit.boot.config import ConfigCandidate, GuestMenu
from virtkit.boot.config.model import BootEntry, BootMenu, iter_entries
from virtkit.boot.extract.formats import BootTarget
from virtkit.boot.extract.writer import OutputFiles
from virtkit.boot.options import BootOptions
from virtkit.boot.worker import Channel, default_isolation, spawn_worker
from virtkit.boot.worker.channel import Handler, LocalChannel
from virtkit.boot.worker.codec import candidates_from_wire, entry_from_wire, menu_from_wire
from virtkit.errors import ImageError, SelectionError, WorkerError
from virtkit.limits import Limits
from virtkit.sanitize import sanitize_text

__all__ = ["BootRequest", "Extracted", "choose_entry", "extract", "fetch_menu", "join_args", "open_channel"]

log = logging.getLogger(__name__)


@dataclass
class BootRequest:
    """What to open and how to parse it.

    Attributes:
        images: image paths in disk order (empty: the bundled sample guest).
        limits: bounds.
        options: how to read the boot configuration.
        image_format: force raw/qcow2.
        sector_size: force 512/4096.
        offset: pygrub's --offset.
        backing: an operator-named qcow2 backing file for the first image.
        isolate: run the parser in a worker (sandboxed when root).
        runas: uid for the worker.
    """

    images: Sequence[str]
    limits: Limits
    options: BootOptions = field(default_factory=BootOptions)
    image_format: str | None = None
    sector_size: int | None = None
    offset: int | None = None
    backing: str | None = None
    isolate: bool = True
    runas: int | None = None


def _open_fds(paths: Sequence[str]) -> list[tuple[int, str]]:
    if not paths:
        from virtkit.cli._common import sample_image_fd

        return [(sample_image_fd(), "sample-guest.img")]
    fds: list[tuple[int, str]] = []
    try:
        for p in paths:
            if os.path.isdir(p):
                raise ImageError(f"{p} is a directory; this command needs disk images")
            try:
                fds.append((os.open(p, os.O_RDONLY | os.O_CLOEXEC), p))
            except OSError as exc:
                raise ImageError(f"cannot open image {p}: {exc.strerror}") from None
    except BaseException:
        for fd, _ in fds:
            os.close(fd)
        raise
    return fds


def open_channel(req: BootRequest) -> Channel:
    """Open the images read-only here and start the worker that parses them.

    Isolation: a sandboxed worker process when running as root (the default for
    xl/libvirt), an unsandboxed worker process otherwise, in-process with
    ``isolate=False`` (debugging).
    """
    req.limits.check("max_disks", len(req.images), "images given")
    if len(req.images) == 1 and os.path.isdir(req.images[0]):
        # An exported /boot on the host: read in this process through HostDirectory (a descriptor
        # of a host directory handed to a chrooted worker would let it walk out of the chroot).
        from virtkit.boot.pipeline import open_guest
        from virtkit.boot.worker.handlers import handlers_for

        path = req.images[0]
        return LocalChannel(handlers_for(lambda: open_guest([path], limits=req.limits)),
                            ["isolation: none for a host directory (read in-process through HostDirectory)"])
    fds = _open_fds(req.images)
    disks = list(fds)
    bfd = _open_fds([req.backing])[0] if req.backing is not None else None
    if bfd is not None:
        fds.append(bfd)

    def handlers() -> Mapping[str, Handler]:
        # Runs in the worker, after the sandbox: the parsing stages are imported only there.
        from virtkit.boot.worker.handlers import make_handlers

        return make_handlers(disks, limits=req.limits, image_format=req.image_format, sector_size=req.sector_size,
                             offset=req.offset, backing=bfd)()
    try:
        if not req.isolate:
            ch = spawn_worker(handlers, keep_fds=[], limits=req.limits, isolation=None, in_process=True)
        else:
            iso = default_isolation(req.runas if os.geteuid() == 0 else os.geteuid())
            ch = spawn_worker(handlers, keep_fds=[fd for fd, _ in fds], limits=req.limits, isolation=iso)
    finally:
        if req.isolate:
            for fd, _ in fds:  # the worker has its own copies
                os.close(fd)
    for note in ch.notes:
        log.debug("worker %s", note)
    return ch


def fetch_menu(ch: Channel, options: BootOptions, limits: Limits) -> GuestMenu:
    """The guest's menu, every configuration found and the one used (validated)."""
    reply = ch.call({"op": "menu", "options": options.to_wire()})
    menu = menu_from_wire(reply.message.get("menu"), limits=limits)
    candidates = candidates_from_wire(reply.message.get("candidates", []), limits=limits)
    used = reply.message.get("used")
    if not isinstance(used, int) or isinstance(used, bool) or not -1 <= used < len(candidates):
        raise WorkerError("worker sent an invalid configuration index")
    for w in menu.warnings:
        log.debug("config: %s", sanitize_text(w))
    chosen = candidates[used] if used >= 0 else ConfigCandidate(menu.loader, menu.config.device or "", menu.config.path, "")
    return GuestMenu(menu, chosen, candidates)


def choose_entry(menu: BootMenu, spec: str | None) -> tuple[tuple[int, ...], BootEntry]:
    """The entry ``spec`` names (index, path, title, id), or the menu's default.

    Raises:
        SelectionError: nothing matches, no default, or the entry is not bootable.
    """
    from virtkit.boot.menu.select import resolve_boot_target

    return resolve_boot_target(menu, spec)


def join_args(cmdline: str, extras: Sequence[str]) -> str:
    """pygrub's rule: each extra argument string is appended after one space."""
    for e in extras:
        if e:
            cmdline += " " + e
    return cmdline


@dataclass
class Extracted:
    entry: BootEntry
    target: BootTarget
    files: OutputFiles
    initrd_count: int


def _request(options: BootOptions, *, path: tuple[int, ...] | None, body: str | None, kernel: str | None,
             ramdisk: str | None, args: str) -> dict[str, object]:
    req: dict[str, object] = {"options": options.to_wire()}
    if kernel is not None:
        req.update({"kernel": kernel, "ramdisk": ramdisk, "args": args})
    else:
        req.update({"path": list(path or ()), "body": body})
    return req


def resolve(ch: Channel, options: BootOptions, limits: Limits, *, path: tuple[int, ...] | None = None,
            body: str | None = None, kernel: str | None = None, ramdisk: str | None = None, args: str = "") -> tuple[BootEntry, int, int]:
    """Resolve an entry without extracting (for ``-n``): entry, kernel size, ramdisk size."""
    reply = ch.call({"op": "resolve", **_request(options, path=path, body=body, kernel=kernel, ramdisk=ramdisk, args=args)})
    entry = entry_from_wire(reply.message.get("entry"), limits=limits)
    return entry, _size(reply.message.get("kernel_size")), _size(reply.message.get("ramdisk_size"))


def _size(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise WorkerError("worker sent an invalid size")
    return v


def extract(ch: Channel, options: BootOptions, limits: Limits, out_dir: str, *, path: tuple[int, ...] | None = None,
            body: str | None = None, kernel: str | None = None, ramdisk: str | None = None, args: str = "",
            extras: Sequence[str] = ()) -> Extracted:
    """Extract an entry's kernel and (concatenated) initrds into ``out_dir``.

    The returned OutputFiles is not committed yet: the caller commits after writing the
    output record, so a failure anywhere leaves nothing behind.  The channel is closed (and
    the worker's exit status checked) before this returns.
    """
    reply = ch.call({"op": "extract", **_request(options, path=path, body=body, kernel=kernel, ramdisk=ramdisk, args=args)})
    entry = entry_from_wire(reply.message.get("entry"), limits=limits)
    count = reply.message.get("initrd_count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 256 or len(reply.streams) != 2:
        raise WorkerError("worker sent an invalid extraction reply")
    files = OutputFiles(out_dir)
    try:
        kpath, _ = files.write_file("boot_kernel.", reply.streams[0], limit=limits.max_kernel_bytes, limit_name="max_kernel_bytes")
        rpath: str | None = None
        if count:
            rpath, _ = files.write_file("boot_ramdisk.", reply.streams[1], limit=limits.max_initrd_bytes, limit_name="max_initrd_bytes")
            if count > 1:
                log.debug("%d initrds concatenated into one ramdisk (4-byte aligned), as the kernel unpacks concatenated archives", count)
        else:
            for _ in reply.streams[1]:
                raise WorkerError("worker sent ramdisk data for an entry without an initrd")
        # The extraction is the channel's last call: the worker's exit status counts before the
        # caller commits anything (a worker that fails after a good reply leaves no files).
        ch.close()
    except BaseException:
        files.close()
        raise
    cmdline = entry.cmdline if kernel is None else args
    if kernel is None:
        cmdline = join_args(cmdline, extras)
    return Extracted(entry, BootTarget(kpath, rpath, cmdline), files, count)


def render_list(menu: BootMenu) -> str:
    """pygrub's ``-l`` listing (title/root/kernel/args/initrd per entry) plus the entry path and id."""
    out = []
    for path, e in iter_entries(menu.items):
        root = e.kernel.device if e.kernel and e.kernel.device else ""
        kernel = e.kernel.path if e.kernel else ""
        initrd = " ".join(r.path for r in e.initrds)
        out.append(f"title: {e.title_display}")
        out.append(f"  root: {sanitize_text(root)}")
        out.append(f"  kernel: {sanitize_text(kernel)}")
        out.append(f"  args: {e.cmdline_display}")
        out.append(f"  initrd: {sanitize_text(initrd)}")
        out.append(f"  entry: {'>'.join(map(str, path))}" + (f"  id: {sanitize_text(e.id)}" if e.id else ""))
        if not e.bootable:
            out.append(f"  note: not bootable ({e.kind.value})")
    return "\n".join(out) + ("\n" if out else "")


def no_entries(menu: BootMenu) -> SelectionError:
    return SelectionError(f"the boot menu of {menu.config.display()} has no entries")


def stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
