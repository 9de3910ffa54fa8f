"""The real GRUB as a test oracle: run a config under Debian's ``grub-emu`` and read what it did.

Method (../shared/reference/grub-oracle-method.md):

1. Disk: the case's files go into a small ext2 filesystem made by ``mke2fs -d`` with the
   UUID and label the case searches for, placed as partition 1 of an MBR (or GPT) disk
   made by ``sfdisk``; ``grub-emu`` gets it through a device map as ``(hd0)``.
2. Harness: ``grub-emu`` has no loaders, and a script function only runs when no command
   of that name exists, so the harness defines ``linux``, ``initrd``, ``chainloader``,
   ``multiboot`` ... as functions that echo a marker line; it sets ``root``, ``prefix``,
   ``grub_platform``, ``grub_cpu`` and ``cmdpath`` as a BIOS core image would, sources
   the case's ``grub.cfg`` between ``@@BEGIN``/``@@END``, sets ``timeout=0`` (and
   ``default`` when one entry is wanted) and lets GRUB's own menu code boot.  Nothing
   loads, so GRUB tries the fallbacks and ends at "Failed to boot both default and
   fallback entries".
3. Isolation: each run is a private mount namespace (``unshare -m``) chrooted into a
   tmpfs that holds only ``/usr`` (read-only), the disk and the harness, so the
   ``(host)`` device sees nothing of this machine.
4. Video: ``SDL_VIDEODRIVER`` names no driver, so ``terminal_output gfxterm`` fails with
   "no suitable video mode found" (dropped when normalising) instead of drawing.
5. Speed: ``grub-emu`` reads keys one byte at a time from stdin; the driver answers each
   "Press any key to continue..." and stops the process as soon as the boot failed or
   the command line / menu screen appears.  An ``LD_PRELOAD`` shim (built with ``cc``
   when there is one) makes GRUB's sleeps (2.5 s per fallback) return at once.

:func:`normalize_transcript` turns raw console text (ours or GRUB's) into comparable
lines: escape sequences and progress meters removed, each run of syntax-error
messages collapsed into one line, and in the boot phase blank lines and key prompts
dropped.
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HARNESS_VERSION",
    "LOADER_FUNCTIONS",
    "OracleCache",
    "OracleCase",
    "OracleUnavailable",
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


@dataclass(frozen=True)
class OracleCase:
    """One oracle run.

    Attributes:
        files: absolute path on the boot filesystem -> contents (the config included).
        config_path: the config GRUB reads, on that filesystem.
        table: "dos" or "gpt" (partition 1 holds the filesystem).
        uuid, label: of the ext2 filesystem.
        platform, cpu: what the harness sets ``grub_platform``/``grub_cpu`` to.
        default_override: assigned to ``default`` after the config (None: keep it).
    """

    files: tuple[tuple[str, bytes], ...]
    config_path: str = "/boot/grub/grub.cfg"
    table: str = "dos"
    uuid: str = DEFAULT_UUID
    label: str = DEFAULT_LABEL
    platform: str = "pc"
    cpu: str = "i386"
    default_override: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return "hd0,msdos1" if self.table == "dos" else "hd0,gpt1"

    def key(self) -> str:
        """A stable hash of everything that decides the oracle's answer."""
        h = hashlib.sha256()
        h.update(f"v{HARNESS_VERSION}|{self.config_path}|{self.table}|{self.uuid}|{self.label}|{self.platform}|{self.cpu}|{self.default_override!r}\n".encode())
        for path, data in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()[:32]


def oracle_available() -> str | None:
    """None if the oracle can run here, else the reason it cannot."""
    for tool in ("grub-emu", "mke2fs", "sfdisk", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/test installs grub-emu, e2fsprogs, fdisk)"
    if os.geteuid() != 0:
        return "the grub-emu oracle needs root (a private mount namespace and chroot)"
    return None


def _harness(case: OracleCase) -> str:
    # a wide terminal: grub-emu's console wraps at 80 columns otherwise
    lines = ["terminfo -g 4096x100 console vt100-color"]
    lines += [f'function {n} {{ echo "@@{n} n=$# root=[$root] chosen=[$chosen]" "$@"; }}' for n in LOADER_FUNCTIONS]
    dev = case.device
    lines += [
        f"set root={dev}",
        f"set prefix=({dev}){case.config_path.rsplit('/', 1)[0]}",
        f"set grub_platform={case.platform}",
        f"set grub_cpu={case.cpu}",
        "set cmdpath=(hd0)",
        "echo @@BEGIN",
        f"source ({dev}){case.config_path}",
        "echo @@END",
        "set timeout=0",
    ]
    if case.default_override is not None:
        lines.append("set default='" + case.default_override.replace("'", "'\\''") + "'")
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


def _make_disk(case: OracleCase, work: Path) -> Path:
    root = work / "root"
    for path, data in case.files:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    (root / "boot").mkdir(parents=True, exist_ok=True)
    (work / "h").mkdir(exist_ok=True)
    disk = work / "h" / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    label = "gpt" if case.table == "gpt" else "dos"
    ptype = "0FC63DAF-8483-4772-8E79-3D69D8477DE4" if label == "gpt" else "83"
    subprocess.run(["sfdisk", "-q", str(disk)], input=f"label: {label}\nstart=2048, size=28672, type={ptype}\n".encode(), check=True, capture_output=True)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-U", case.uuid, "-L", case.label, "-d", str(root), "-E", f"offset={2048 * 512}", str(disk), "14M"],
        check=True,
        capture_output=True,
        env={**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"},
    )
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
        RuntimeError: grub-emu did not reach an end state in ``timeout`` seconds.
    """
    reason = oracle_available()
    if reason is not None:
        raise OracleUnavailable(reason)
    cache = cache_dir or Path(os.environ.get("VIRTKIT_TEST_CACHE", "/tmp/virtkit-test-cache"))
    shim = _shim(cache)
    with tempfile.TemporaryDirectory(prefix="vk-grub-emu-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        _make_disk(case, work)
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
