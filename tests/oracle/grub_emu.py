"""The real GRUB as a test oracle: run a config under Debian's ``grub-emu`` and read what it did.

Method (../shared/reference/grub-oracle-method.md):

1. Disk: an MBR (or GPT) disk made by ``sfdisk`` whose partitions 1, 2, ... hold the case's
   filesystems (:class:`OraclePartition`), each with the UUID and label the config searches
   for: ext2 made by ``mke2fs -d``; FAT made by ``mkfs.vfat -i VOLID`` and filled by
   ``mcopy`` (no mounting); btrfs made by ``mkfs.btrfs`` and filled on a loop mount inside a
   private mount namespace, because btrfs-progs 6.2 can neither create subvolumes offline
   nor set the default one (``btrfs subvolume create``/``set-default``); or nothing (a BIOS
   boot partition).  ``grub-emu`` gets the disk through a device map as ``(hd0)``.
2. Harness: ``grub-emu`` has no loaders, and a script function only runs when no command
   of that name exists, so the harness defines ``linux``, ``initrd``, ``chainloader``,
   ``multiboot`` ... as functions that echo a marker line (on ``efi`` also ``fwsetup``,
   which grub-emu lacks: ``--is-supported`` succeeds, as on a UEFI VM, anything else echoes
   an ``@@fwsetup`` marker); it sets ``root``, ``prefix``, ``grub_platform``, ``grub_cpu``
   and ``cmdpath`` as the core image would (``prefix`` the config's directory on its
   partition; ``cmdpath`` that directory on ``efi``, ``(hd0)`` on a BIOS), sources the
   case's config between ``@@BEGIN``/``@@END``, sets ``timeout=0`` (and ``default`` when
   one entry is wanted) and lets GRUB's own menu code boot.  Nothing loads, so GRUB tries
   the fallbacks and ends at "Failed to boot both default and fallback entries".  (A
   config that runs ``configfile`` shows its menu inside ``source``: ``@@END`` and the
   ``default`` set after it are never reached.)
3. Isolation: each run is a private mount namespace (``unshare -m``) chrooted into a
   tmpfs that holds only ``/usr`` (read-only), the disk and the harness, so the
   ``(host)`` device sees nothing of this machine.
4. Video: ``SDL_VIDEODRIVER`` names no driver, so ``terminal_output gfxterm`` fails with
   "no suitable video mode found" (dropped when normalising) instead of drawing.
5. Speed: ``grub-emu`` reads keys one byte at a time from stdin; the driver answers each
   "Press any key to continue..." and stops the process as soon as the boot failed or
   the command line / menu screen appears.  An ``LD_PRELOAD`` shim (built with ``cc``
   when there is one) makes GRUB's sleeps (2.5 s per fallback) return at once.

It is upstream GRUB 2.06: a btrfs is read from its top-level subvolume whatever the
default subvolume (grub-core/fs/btrfs.c ``get_root``), as without openSUSE's
``btrfs_relative_path`` patch.

:func:`normalize_transcript` turns raw console text (ours or GRUB's) into comparable
lines: escape sequences and progress meters removed, each run of syntax-error
messages collapsed into one line, and in the boot phase blank lines and key prompts
dropped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FS_TYPES",
    "HARNESS_VERSION",
    "LOADER_FUNCTIONS",
    "OracleCache",
    "OracleCase",
    "OraclePartition",
    "OracleUnavailable",
    "harness_presets",
    "minimal_pf2",
    "normalize_transcript",
    "oracle_available",
    "run_grub_emu",
]

HARNESS_VERSION = "5"
LOADER_FUNCTIONS = (
    "linux", "linux16", "linuxefi", "initrd", "initrd16", "initrdefi", "devicetree",
    "multiboot", "multiboot2", "module", "module2", "xen_hypervisor", "xen_module",
    "chainloader", "ntldr", "appleloader", "kfreebsd", "knetbsd", "kopenbsd",
)
DEFAULT_UUID = "0d1c0000-1111-2222-3333-444455556666"
DEFAULT_LABEL = "VKBOOT"
_FAKE_TIME = 1700000000

_SHIM_C = r"""
#include <time.h>
#include <unistd.h>
int nanosleep(const struct timespec *a, struct timespec *b) { (void)a; (void)b; return 0; }
int clock_nanosleep(clockid_t c, int f, const struct timespec *a, struct timespec *b) { (void)c; (void)f; (void)a; (void)b; return 0; }
int usleep(useconds_t u) { (void)u; return 0; }
unsigned int sleep(unsigned int s) { (void)s; return 0; }
"""


def minimal_pf2() -> bytes:
    """The smallest font GRUB's ``loadfont`` accepts: the required PFF2 sections and one glyph."""
    import struct

    def sec(name: bytes, data: bytes) -> bytes:
        return name + struct.pack(">I", len(data)) + data

    hdr = b"".join(
        [
            sec(b"FILE", b"PFF2"), sec(b"NAME", b"VK Test Regular 16\0"), sec(b"FAMI", b"VK Test\0"),
            sec(b"WEIG", b"normal\0"), sec(b"SLAN", b"normal\0"), sec(b"PTSZ", struct.pack(">H", 16)),
            sec(b"MAXW", struct.pack(">H", 8)), sec(b"MAXH", struct.pack(">H", 2)),
            sec(b"ASCE", struct.pack(">H", 1)), sec(b"DESC", struct.pack(">H", 1)),
        ]
    )
    data_off = len(hdr) + 8 + 9 + 8
    glyph = struct.pack(">HHhhh", 8, 2, 0, 0, 8) + b"\xff\xff"
    return hdr + sec(b"CHIX", struct.pack(">IBI", 0x41, 0, data_off)) + b"DATA" + struct.pack(">I", 0xFFFFFFFF) + glyph


class OracleCache:
    """Recorded oracle transcripts, keyed by :meth:`OracleCase.key`, in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, list[str]]:
        if self.path.exists():
            data: dict[str, list[str]] = json.loads(self.path.read_text())
            return data
        return {}

    def store(self, key: str, lines: list[str]) -> None:
        with _CACHE_LOCK:
            data = self.load()
            data[key] = lines
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            os.replace(tmp, self.path)


_CACHE_LOCK = threading.Lock()


class OracleUnavailable(Exception):
    """grub-emu (or the tools around it, or root) is missing: the oracle cannot run."""


FS_TYPES = ("ext2", "vfat", "btrfs", "none")
_PART_MIB = {"ext2": 14, "vfat": 16, "btrfs": 64, "none": 1}  # btrfs-progs 6.2 makes nothing smaller with single profiles
_PART_TYPE = {  # sfdisk: (MBR id, GPT type GUID)
    "ext2": ("83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    "btrfs": ("83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    "vfat": ("ef", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),  # an EFI system partition
    "none": ("da", "21686148-6453-6F6E-744E-656564454649"),  # MBR "non-FS data"; GPT "BIOS boot"
}


@dataclass(frozen=True)
class OraclePartition:
    """One partition of the oracle disk and the filesystem in it.

    Attributes:
        files: absolute path on the filesystem (from a btrfs's top level) -> contents.
        fs: "ext2", "vfat", "btrfs" or "none" (no filesystem; ``files`` must be empty).
        uuid: the filesystem UUID (FAT: the volume id, "9C2E-11F0").
        label: the filesystem label ("" for none).
        default_subvolume: btrfs: the subvolume ``btrfs subvolume set-default`` names, as a
            path from the top level ("@/.snapshots/1/snapshot"); "" keeps the top level.
        subvolumes: btrfs: paths from the top level created as subvolumes, parents first
            (the default subvolume is one even when not listed); other directories are plain.
    """

    files: tuple[tuple[str, bytes], ...] = ()
    fs: str = "ext2"
    uuid: str = DEFAULT_UUID
    label: str = DEFAULT_LABEL
    default_subvolume: str = ""
    subvolumes: tuple[str, ...] = ()

    def all_subvolumes(self) -> tuple[str, ...]:
        """``subvolumes`` plus the default subvolume, normalised ("a/b"), parents first."""
        out = [s.strip("/") for s in self.subvolumes if s.strip("/")]
        if self.default_subvolume.strip("/") and self.default_subvolume.strip("/") not in out:
            out.append(self.default_subvolume.strip("/"))
        return tuple(sorted(out, key=lambda s: s.count("/")))


@dataclass(frozen=True)
class OracleCase:
    """One oracle run.

    Attributes:
        partitions: partition 1, 2, ... of ``(hd0)``.
        config_path: the config GRUB reads, on partition ``config_partition``.
        config_partition: its number (1-based); ``root`` and ``prefix`` name it.
        table: "dos" or "gpt".
        platform, cpu: what the harness sets ``grub_platform``/``grub_cpu`` to.
        default_override: assigned to ``default`` after the config (None: keep it).
    """

    partitions: tuple[OraclePartition, ...]
    config_path: str = "/boot/grub/grub.cfg"
    config_partition: int = 1
    table: str = "dos"
    platform: str = "pc"
    cpu: str = "i386"
    default_override: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.config_partition <= len(self.partitions):
            raise ValueError(f"config_partition {self.config_partition} is not one of the {len(self.partitions)} partitions")
        if self.table not in ("dos", "gpt"):
            raise ValueError(f"table {self.table!r}: dos or gpt")
        for part in self.partitions:
            if part.fs not in FS_TYPES:
                raise ValueError(f"filesystem {part.fs!r}: one of {', '.join(FS_TYPES)}")
            if part.fs != "btrfs" and (part.default_subvolume or part.subvolumes):
                raise ValueError(f"only btrfs has subvolumes, not {part.fs}")
            if part.fs == "none" and part.files:
                raise ValueError("a partition without a filesystem holds no files")

    def partition_name(self, number: int) -> str:
        """GRUB's name of partition ``number``: "hd0,msdos1", "hd0,gpt2"."""
        return f"hd0,{'msdos' if self.table == 'dos' else 'gpt'}{number}"

    @property
    def device(self) -> str:
        """The partition holding the config."""
        return self.partition_name(self.config_partition)

    def key(self) -> str:
        """A stable hash of everything that decides the oracle's answer.

        A single ext2 partition keeps the form keys had before cases could have several
        partitions, so the transcripts recorded for those stay valid.
        """
        h = hashlib.sha256()
        head = f"v{HARNESS_VERSION}|{self.config_path}|{self.table}"
        tail = f"{self.platform}|{self.cpu}|{self.default_override!r}"
        only = self.partitions[0] if len(self.partitions) == 1 else None
        if only is not None and only.fs == "ext2":
            h.update(f"{head}|{only.uuid}|{only.label}|{tail}\n".encode())
            _hash_files(h, only.files)
            return h.hexdigest()[:32]
        h.update(f"{head}|partition {self.config_partition}|{tail}\n".encode())
        for n, part in enumerate(self.partitions, 1):
            h.update(f"{n}|{part.fs}|{part.uuid}|{part.label}|{part.default_subvolume}|{'|'.join(part.subvolumes)}\n".encode())
            _hash_files(h, part.files)
        return h.hexdigest()[:32]


def _hash_files(h: hashlib._Hash, files: tuple[tuple[str, bytes], ...]) -> None:
    for path, data in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())


def oracle_available(case: OracleCase | None = None) -> str | None:
    """None if the oracle can run here (for ``case``: with its filesystems), else the reason it cannot."""
    tools = ["grub-emu", "mke2fs", "sfdisk", "unshare", "chroot"]
    fs = {p.fs for p in case.partitions} if case is not None else set()
    if "vfat" in fs:
        tools += ["mkfs.vfat", "mcopy"]
    if "btrfs" in fs:
        tools += ["mkfs.btrfs", "btrfs", "mount", "umount"]
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/test installs grub-emu, e2fsprogs, fdisk, dosfstools, mtools, btrfs-progs)"
    if os.geteuid() != 0:
        return "the grub-emu oracle needs root (a private mount namespace and chroot)"
    if "btrfs" in fs and not _kernel_has_btrfs():
        return "the kernel cannot mount btrfs (modprobe btrfs), needed to make subvolumes"
    return None


def _kernel_has_btrfs() -> bool:
    try:
        if any(line.split()[-1] == "btrfs" for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()):
            return True
    except OSError:
        return False
    return subprocess.run(["modprobe", "btrfs"], capture_output=True, check=False).returncode == 0


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def harness_presets(case: OracleCase) -> dict[str, str]:
    """The variables the harness sets before the config, as the core image would."""
    directory = f"({case.device}){case.config_path.rsplit('/', 1)[0]}"
    return {
        "root": case.device,
        "prefix": directory,
        "grub_platform": case.platform,
        "grub_cpu": case.cpu,
        # the directory of the EFI binary, or the disk a BIOS booted from
        "cmdpath": directory if case.platform == "efi" else "(hd0)",
    }


def _harness(case: OracleCase) -> str:
    # a wide terminal: grub-emu's console wraps at 80 columns otherwise
    lines = ["terminfo -g 4096x100 console vt100-color"]
    lines += [f'function {n} {{ echo "@@{n} n=$# root=[$root] chosen=[$chosen]" "$@"; }}' for n in LOADER_FUNCTIONS]
    if case.platform == "efi":
        # grub-emu has no fwsetup; a UEFI VM's firmware supports "Firmware Settings"
        lines.append('function fwsetup { if [ "$1" = --is-supported ]; then return 0; fi; '
                     'echo "@@fwsetup n=$# root=[$root] chosen=[$chosen]" "$@"; }')
    lines += [f"set {k}={v}" for k, v in harness_presets(case).items()]
    lines += [
        "echo @@BEGIN",
        f"source ({case.device}){case.config_path}",
        "echo @@END",
        "set timeout=0",
    ]
    if case.default_override is not None:
        lines.append("set default=" + _quote(case.default_override))
    return "\n".join(lines) + "\n"


def _shim(cache: Path) -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out = cache / "vk-nosleep.so"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    src = cache / "vk-nosleep.c"
    src.write_text(_SHIM_C)
    tmp = cache / f"vk-nosleep.{os.getpid()}.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(src)], capture_output=True)
    if r.returncode != 0:
        return None
    os.replace(tmp, out)
    return out


def _stage(files: tuple[tuple[str, bytes], ...], root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for path, data in files:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    for p in [root, *root.rglob("*")]:
        os.utime(p, (_FAKE_TIME, _FAKE_TIME), follow_symlinks=False)
    return root


def _run(argv: list[str], *, input: bytes | None = None, env: dict[str, str] | None = None) -> None:
    r = subprocess.run(argv, input=input, env=env, capture_output=True, check=False)
    if r.returncode != 0:
        shown = " ".join(a if len(a) < 100 else "'<script>'" for a in argv)
        raise RuntimeError(f"{shown} exited {r.returncode}: {r.stderr.decode(errors='replace').strip()}")


def _place(src: Path, dst: Path, offset: int) -> None:
    """Copy ``src`` into ``dst`` at byte ``offset``, leaving all-zero chunks as holes."""
    zero = bytes(1 << 20)
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        pos = 0
        while chunk := fin.read(len(zero)):
            if chunk != zero[: len(chunk)]:
                fout.seek(offset + pos)
                fout.write(chunk)
            pos += len(chunk)


def _mkfs_vfat(part: OraclePartition, tree: Path, img: Path) -> None:
    volid = part.uuid.replace("-", "")
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", volid):
        raise ValueError(f"a FAT volume id is 8 hex digits (XXXX-XXXX), not {part.uuid!r}")
    size_kib = _PART_MIB["vfat"] * 1024
    _run(["mkfs.vfat", "--invariant", "-F", "16", "-i", volid, *(["-n", part.label] if part.label else []), "-C", str(img), str(size_kib)])
    entries = sorted(str(e) for e in tree.iterdir())
    if entries:
        _run(["mcopy", "-s", "-m", "-i", str(img), *entries, "::/"], env={**os.environ, "MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"})


# Run in a private mount namespace: an interrupted build leaves no mount behind, and the loop
# device `mount -o loop` attaches is auto-cleared once the namespace's mount is gone.
_BTRFS_POPULATE = r"""
set -e
img=$1 mnt=$2 tree=$3 default=$4
shift 4
mount -o loop "$img" "$mnt"
dev=$(findmnt -n -o SOURCE "$mnt")
trap 'umount "$mnt"; btrfs device scan --forget "$dev" 2>/dev/null || true' EXIT
for sv in "$@"; do
  mkdir -p "$mnt/$(dirname "$sv")"
  btrfs subvolume create "$mnt/$sv" >/dev/null
done
cp -a "$tree/." "$mnt/"
if [ -n "$default" ]; then
  btrfs subvolume set-default "$mnt/$default"
  test "$(btrfs subvolume get-default "$mnt" | sed -n 's/.* path //p')" = "$default"
fi
sync -f "$mnt"
"""


def _mkfs_btrfs(part: OraclePartition, tree: Path, img: Path, lock: Path) -> None:
    with open(img, "wb") as f:
        f.truncate(_PART_MIB["btrfs"] << 20)
    _run(["mkfs.btrfs", "-q", "-f", "-U", part.uuid, *(["-L", part.label] if part.label else []), "-m", "single", "-d", "single", str(img)])
    mnt = img.with_suffix(".mnt")
    mnt.mkdir()
    lock.parent.mkdir(parents=True, exist_ok=True)
    # the kernel registers a btrfs by its UUID: two builds of the same one must not overlap
    with open(lock, "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        _run(["unshare", "-m", "--propagation", "private", "sh", "-c", _BTRFS_POPULATE, "sh",
              str(img), str(mnt), str(tree), part.default_subvolume.strip("/"), *part.all_subvolumes()])
    mnt.rmdir()


def _make_disk(case: OracleCase, work: Path, cache: Path) -> Path:
    (work / "h").mkdir(exist_ok=True)
    disk = work / "h" / "disk.img"
    sizes = [_PART_MIB[p.fs] for p in case.partitions]
    with open(disk, "wb") as f:
        f.truncate((2 + sum(sizes)) << 20)  # 1 MiB before the first partition, 1 MiB for GPT's backup
    if case.table == "dos" and len(sizes) > 4:
        raise ValueError("the oracle makes at most 4 MBR partitions (no extended partition)")
    script = [f"label: {case.table}"]
    start = 1
    for part, size in zip(case.partitions, sizes):
        mbr, gpt = _PART_TYPE[part.fs]
        script.append(f"start={start * 2048}, size={size * 2048}, type={gpt if case.table == 'gpt' else mbr}")
        start += size
    _run(["sfdisk", "-q", str(disk)], input="\n".join(script).encode() + b"\n")
    start = 1
    for n, (part, size) in enumerate(zip(case.partitions, sizes), 1):
        if part.fs == "ext2":
            root = _stage(part.files, work / f"p{n}")
            (root / "boot").mkdir(exist_ok=True)
            _run(
                ["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-U", part.uuid, "-L", part.label, "-d", str(root),
                 "-E", f"offset={start << 20}", str(disk), f"{size}M"],
                env={**os.environ, "E2FSPROGS_FAKE_TIME": str(_FAKE_TIME)},
            )
        elif part.fs in ("vfat", "btrfs"):
            tree = _stage(part.files, work / f"p{n}")
            img = work / f"p{n}.img"
            if part.fs == "vfat":
                _mkfs_vfat(part, tree, img)
            else:
                _mkfs_btrfs(part, tree, img, cache / "btrfs.lock")
            _place(img, disk, start << 20)
            img.unlink()
        start += size
    return disk


_ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROGRESS = re.compile(r"\x1b\[\d+;\d+H\s*\[ [^\]\n]* \]\x1b\[\d+;\d+H")


def _clean(raw: str) -> str:
    text = _PROGRESS.sub("", raw)
    text = _ESC.sub("", text)
    return text.replace("\r", "")


def run_grub_emu(case: OracleCase, *, timeout: float = 30.0, cache_dir: Path | None = None, timings: dict[str, float] | None = None) -> str:
    """Run ``grub-emu`` on ``case``; the console text from ``@@BEGIN`` on (escapes removed).

    ``timings`` (if given) receives "disk" (building the image) and "emu" (the grub-emu
    process, from start to the end of the boot attempt) in seconds.

    Raises:
        OracleUnavailable: the oracle cannot run here.
        RuntimeError: a tool making the disk failed, or grub-emu did not reach an end
            state in ``timeout`` seconds.
    """
    reason = oracle_available(case)
    if reason is not None:
        raise OracleUnavailable(reason)
    cache = cache_dir or Path(os.environ.get("VIRTKIT_TEST_CACHE", "/tmp/virtkit-test-cache"))
    shim = _shim(cache)
    with tempfile.TemporaryDirectory(prefix="vk-grub-emu-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        _make_disk(case, work, cache)
        if timings is not None:
            timings["disk"] = time.monotonic() - t0
        (work / "h" / "grub.cfg").write_text(_harness(case))
        (work / "h" / "dm").write_text("(hd0) /h/disk.img\n")
        if shim is not None:
            shutil.copy(shim, work / "h" / "shim.so")
        # SDL_VIDEODRIVER: no video, so `terminal_output gfxterm` fails cleanly instead of drawing
        preload = "/usr/bin/env SDL_VIDEODRIVER=vk-none " + ("LD_PRELOAD=/h/shim.so " if shim is not None else "")
        script = (
            'set -e; D=$(mktemp -d); mount -t tmpfs none "$D"; mkdir "$D/usr" "$D/h" "$D/dev" "$D/tmp"; '
            'mount --bind /usr "$D/usr"; mount -o remount,ro,bind "$D/usr"; '
            'ln -s usr/lib "$D/lib"; ln -s usr/lib64 "$D/lib64"; ln -s usr/bin "$D/bin"; ln -s usr/sbin "$D/sbin"; '
            f'cp {work}/h/* "$D/h/"; '
            f'exec chroot "$D" {preload}/usr/bin/grub-emu -d /h -m /h/dm'
        )
        t_start = time.monotonic()
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None and proc.stdin is not None
        os.set_blocking(proc.stdout.fileno(), False)
        buf = bytearray()
        answered = 0
        deadline = time.monotonic() + timeout
        done = False
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([proc.stdout], [], [], 0.05)
                if r:
                    chunk = proc.stdout.read()
                    if not chunk:
                        done = True
                        break
                    buf.extend(chunk)
                elif proc.poll() is not None:
                    done = True
                    break
                text = _clean(buf.decode("utf-8", "replace"))
                if "Failed to boot both default and fallback entries." in text and text.rstrip().endswith("Press any key to continue..."):
                    done = True
                    break
                if "grub>" in text.split("@@BEGIN", 1)[-1] or "Use the" in text.split("@@END", 1)[-1]:
                    done = True
                    break
                prompts = text.count("Press any key to continue...")
                while answered < prompts:
                    try:
                        proc.stdin.write(b"x")
                        proc.stdin.flush()
                    except BrokenPipeError:
                        break
                    answered += 1
        finally:
            if timings is not None:
                timings["emu"] = time.monotonic() - t_start
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if not done:
            raise RuntimeError(f"grub-emu did not finish within {timeout}s; output so far:\n{_clean(buf.decode('utf-8', 'replace'))[-2000:]}")
    text = _clean(buf.decode("utf-8", "replace"))
    start = text.find("@@BEGIN\n")
    if start < 0:
        raise RuntimeError(f"the harness did not start; grub-emu printed:\n{text[-2000:]}")
    return text[start + len("@@BEGIN\n") :]


_NO_VIDEO = "error: no suitable video mode found."
_SYNTAX = ("error: syntax error.", "error: Incorrect command.", "error: out of memory.")
_MENU_SCREEN = ("GNU GRUB  version", "Use the ", "Press enter to boot", "before booting or", "grub>", "Minimal BASH-like")


def normalize_transcript(text: str) -> list[str]:
    """Comparable lines from console text (GRUB's after ``@@BEGIN``, or ours).

    * config phase (before ``@@END``): every line kept, except that consecutive
      syntax-error messages collapse into one ``error: syntax error.``;
    * boot phase: blank lines, key prompts and menu-screen text dropped; the text
      stops after "Failed to boot both default and fallback entries.".
    """
    out: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    phase = "config"
    for line in lines:
        s = line.expandtabs(8).rstrip(" ")
        if phase == "config" and s == "@@END":
            out.append("@@END")
            phase = "boot"
            continue
        if s == _NO_VIDEO:
            continue  # grub-emu has no video here; a VM's GRUB switches to gfxterm silently
        if s in _SYNTAX or (s.startswith("error: ") and s.endswith(".") and len(s) < 12):
            if out and out[-1] == "error: syntax error.":
                continue
            out.append("error: syntax error.")
            continue
        if phase == "boot" or s.strip().startswith(("Booting `", "Falling back to `")):
            phase = "boot"
            st = s.strip()
            if st.startswith(("GNU GRUB  version", "Minimal BASH-like", "grub>")):
                break  # the command line or the menu screen: GRUB waits for a key from here on
            if not st or st == "Press any key to continue..." or st.startswith(_MENU_SCREEN):
                continue
            out.append(st)
            if st == "Failed to boot both default and fallback entries.":
                break
            continue
        out.append(s)
    return out
