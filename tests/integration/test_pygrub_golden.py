"""virtkit-pygrub's outputs as golden files, every failure class, and ``--runas``.

* Golden files (``tests/golden/pygrub/``; ``pytest --regenerate-golden`` rewrites them) for every
  output format - ``sxp``, ``simple``, ``simple0``, ``-n``, ``-l``, ``--isconfig`` - with the
  temp-file names and the output directory normalised.
* One golden per failure class (``tests/golden/pygrub/errors/``): the exit status and the one
  line on stderr.  For each failure: a non-zero status, exactly one line on stderr (no
  traceback) without ``--debug``, nothing on stdout, nothing left in the output directory and
  nothing written to the ``--output`` file libxl pre-created.
* ``--runas`` (root): the worker really runs as that uid; an image the uid cannot read still
  works because we pass descriptors (pygrub fails, and exits 0).

Images are built at test time with real tools (tests/pygrub_support.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import assert_golden
from libxl_harness import run_like_libxl
from pygrub_support import PYGRUB, VIRTKIT_PYGRUB, Guest, ImageCache, normalise, payload, run_direct

K1 = payload("KERNEL 6.1.0-2-amd64", 200_001)
I1 = payload("INITRD 6.1.0-2-amd64", 60_002)
K2 = payload("KERNEL 6.1.0-1-amd64", 150_003)

CFG = """\
set timeout=5
set default="1>0"
menuentry 'Debian GNU/Linux' --id debian {
	linux /boot/vmlinuz-6.1.0-2-amd64 root=/dev/xvda1 ro quiet
	initrd /boot/initrd.img-6.1.0-2-amd64
}
submenu 'Advanced options for Debian GNU/Linux' --id advanced {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-2-amd64 (recovery mode)' --id recovery {
		linux /boot/vmlinuz-6.1.0-2-amd64 root=/dev/xvda1 ro single x='y'
		initrd /boot/initrd.img-6.1.0-2-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-1-amd64' --id old {
		linux /boot/vmlinuz-6.1.0-1-amd64 root=/dev/xvda1 ro
	}
}
menuentry 'Xen 4.17' --id xen {
	multiboot2 /boot/xen.gz dom0_mem=1024M
	module2 /boot/vmlinuz-6.1.0-2-amd64 ro
}
"""
FILES: dict[str, bytes | str] = {"/boot/grub/grub.cfg": CFG, "/boot/vmlinuz-6.1.0-2-amd64": K1,
                                 "/boot/initrd.img-6.1.0-2-amd64": I1, "/boot/vmlinuz-6.1.0-1-amd64": K2,
                                 "/boot/xen.gz": payload("XEN", 3000)}
GUEST = Guest.make(FILES, disk="mbr")

LEGACY_CFG = """\
default 1
timeout 5
title Debian GNU/Linux, kernel 6.1.0-2-amd64
root (hd0,0)
kernel /boot/vmlinuz-6.1.0-2-amd64 root=/dev/xvda1 ro
initrd /boot/initrd.img-6.1.0-2-amd64
title Debian GNU/Linux, kernel 6.1.0-1-amd64
root (hd0,0)
kernel /boot/vmlinuz-6.1.0-1-amd64 root=/dev/xvda1 ro single
"""


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    return ImageCache(tmp_path_factory.mktemp("pygrub-golden"))


# ----------------------------------------------------------------------------- output formats


@dataclass(frozen=True)
class Out:
    golden: str
    argv: tuple[str, ...]
    kernel: bytes | None  # the file extracted (None: nothing extracted)
    ramdisk: bytes | None = None


OUTPUTS = [
    Out("sxp.txt", ("-q",), K1, I1),  # the default format; the default "1>0" is the recovery entry
    Out("simple.txt", ("-q", "--output-format=simple"), K1, I1),
    Out("simple0.bin", ("-q", "--output-format=simple0"), K1, I1),
    Out("sxp-entry-args.txt", ("--entry=old", "--args=console=hvc0 x=\"a'b\""), K2),
    Out("simple-kernel-ramdisk.txt", ("--output-format=simple", "--kernel=/boot/vmlinuz-6.1.0-1-amd64",
                                      "--ramdisk=/boot/initrd.img-6.1.0-2-amd64", "--args=root=/dev/xvda1"), K2, I1),
    Out("not-really-sxp.txt", ("-q", "-n"), None),
    Out("not-really-simple.txt", ("-q", "-n", "--output-format=simple"), None),
    Out("not-really-simple0.bin", ("-q", "-n", "--output-format=simple0", "--entry=0"), None),
    Out("list.txt", ("-l",), None),
]


@pytest.mark.parametrize("out", OUTPUTS, ids=[o.golden for o in OUTPUTS])
def test_output_golden(out: Out, images: ImageCache, tmp_path: Path) -> None:
    image = images.get(GUEST)
    res = run_direct(VIRTKIT_PYGRUB, image, out.argv, tmp_path / "out")
    assert res.status == 0, res.stderr
    assert res.stderr == ""
    assert_golden(res.normalised(), f"pygrub/{out.golden}")
    assert res.file("kernel") == out.kernel
    assert res.file("ramdisk") == out.ramdisk
    assert len(res.files) == (out.kernel is not None) + (out.ramdisk is not None)



@pytest.mark.parametrize(("golden", "name", "text", "argv"), [
    ("isconfig-grub2.txt", "grub.cfg", CFG, ()),
    ("isconfig-grub2-entry.txt", "grub.cfg", CFG, ("--entry=old", "--args=console=hvc0")),
    ("isconfig-menu.lst.txt", "menu.lst", LEGACY_CFG, ()),
], ids=["grub2", "grub2-entry", "menu.lst"])
def test_isconfig_golden(golden: str, name: str, text: str, argv: tuple[str, ...], tmp_path: Path) -> None:
    """``--isconfig``: IMAGE is a configuration file on the host.  pygrub always uses its GRUB 2
    parser (a menu.lst gives an IndexError, reference §3.5); we read it as what it is."""
    cfg = tmp_path / name
    cfg.write_text(text)
    proc = subprocess.run([*VIRTKIT_PYGRUB, "--isconfig", *argv, str(cfg)], capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert_golden(proc.stdout, f"pygrub/{golden}")
    assert os.listdir(tmp_path) == [name]  # pygrub leaks two temp files here


# ----------------------------------------------------------------------------- failure classes


def _zeros(tmp: Path) -> Path:
    p = tmp / "zeros.img"
    with open(p, "wb") as f:
        f.truncate(8 << 20)
    return p


def _guest(files: dict[str, bytes | str], **kw: str) -> Callable[[ImageCache, Path], Path]:
    return lambda images, _tmp: images.get(Guest.make(files, **kw))


@dataclass(frozen=True)
class Fail:
    golden: str
    image: Callable[[ImageCache, Path], Path]
    status: int
    argv: tuple[str, ...] = ("-q",)
    direct: bool = False  # run with the result on stdout (for --output-format/--output-directory cases)
    root: bool = False  # needs root (a read-only mount)


LOOP_CFG = "while true; do true; done\nmenuentry 'never' {\n\tlinux /boot/vmlinuz-6.1.0-2-amd64\n}\n"
NEWLINE_CFG = ("menuentry 'x' {\n\tlinux /boot/vmlinuz-6.1.0-2-amd64 root=/dev/xvda1 \"a\nkernel /etc/shadow\"\n"
               "\tinitrd /boot/initrd.img-6.1.0-2-amd64\n}\n")
CHAIN_CFG = "default 0\ntitle Windows\nrootnoverify (hd0,0)\nchainloader +1\n"

FAILS = [
    Fail("no-filesystem.txt", lambda _i, tmp: _zeros(tmp), 5),
    Fail("no-config.txt", _guest({"/boot/vmlinuz-6.1.0-2-amd64": K1}), 5),
    Fail("missing-kernel.txt", _guest({**FILES, "/boot/grub/grub.cfg": CFG.replace("vmlinuz-6.1.0-2", "vmlinuz-6.9")}), 4),
    Fail("missing-initrd.txt", _guest({k: v for k, v in FILES.items() if "initrd" not in k}), 4),
    Fail("entry-matches-nothing.txt", _guest(FILES), 6, ("--entry=no such entry",)),
    Fail("entry-is-a-submenu.txt", _guest(FILES), 6, ("--entry=1",)),
    Fail("entry-not-bootable-xen.txt", _guest(FILES), 6, ("--entry=xen",)),
    Fail("entry-not-bootable-chainload.txt", _guest({"/boot/grub/menu.lst": CHAIN_CFG}, disk="mbr"), 6),
    Fail("worker-timeout.txt", _guest({**FILES, "/boot/grub/grub.cfg": LOOP_CFG}), 8,
         ("-q", "--limit=worker_timeout=0.5")),
    Fail("kernel-over-limit.txt", _guest(FILES), 3, ("-q", "--limit=max_kernel_bytes=100000")),
    Fail("separator-in-value.txt", _guest({**FILES, "/boot/grub/grub.cfg": NEWLINE_CFG}), 7,
         ("-q", "--output-format=simple"), direct=True),
    Fail("output-directory-unwritable.txt", _guest(FILES), 7, ("-q",), direct=True, root=True),
]


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("case", FAILS, ids=[f.golden.removesuffix(".txt") for f in FAILS])
def test_failure_class(case: Fail, images: ImageCache, tmp_path: Path) -> None:
    image = case.image(images, tmp_path)
    if case.direct:
        outdir = tmp_path / "out"
        outdir.mkdir()
        mounted = False
        if case.root:
            if os.geteuid() != 0:
                pytest.skip("a directory even root cannot write to needs a read-only mount (root)")
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "virtkit-test", str(outdir)], check=True)
            mounted = True
        try:
            res = run_direct(VIRTKIT_PYGRUB, image, case.argv, outdir)
        finally:
            if mounted:
                subprocess.run(["umount", str(outdir)], check=True)
        status, stdout, stderr, left = res.status, res.stdout, res.stderr, sorted(res.files)
        text = normalise(stderr.encode(), outdir)
    else:
        lx = run_like_libxl(VIRTKIT_PYGRUB, str(image), bootloader_args=case.argv, timeout=60)
        status, stdout, stderr, left = lx.status, lx.stdout.encode(), lx.stderr, lx.leftovers
        assert lx.output == b"", "a failing run must not write a record"
        text = normalise(stderr.encode(), lx._dir or "")
    assert status == case.status, stderr
    line = _one_line(stderr)
    assert line.startswith("virtkit-pygrub: error: ") or line.startswith("pygrub.py: error: ")
    assert stdout == b""
    assert left == [], f"files left behind: {left}"
    text = text.replace(str(image).encode(), b"<IMAGE>")
    assert_golden(f"exit {status}\n".encode() + text, f"pygrub/errors/{case.golden}")


def test_debug_shows_the_detail(images: ImageCache) -> None:
    """The full detail (traceback, worker notes) only with --debug."""
    image = images.get(Guest.make({**FILES, "/boot/grub/grub.cfg": CFG.replace("vmlinuz-6.1.0-2", "vmlinuz-6.9")},
                                  disk="mbr"))
    res = run_like_libxl(VIRTKIT_PYGRUB, str(image), bootloader_args=("-q", "--debug"), timeout=60)
    assert res.status == 4
    assert "Traceback" in res.stderr and "FileNotFound" in res.stderr
    assert re.search(r"worker (identity|isolation)", res.stderr), res.stderr
    assert res.leftovers == []


# ----------------------------------------------------------------------------- --runas


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("--runas needs root")


def test_runas_works_and_matches_the_plain_run(images: ImageCache) -> None:
    _require_root()
    image = images.get(GUEST)
    plain = run_like_libxl(VIRTKIT_PYGRUB, str(image), bootloader_args=["-q"])
    deprived = run_like_libxl(VIRTKIT_PYGRUB, str(image), runas=65534)
    for res in (plain, deprived):
        assert res.status == 0, res.stderr
        assert (res.kernel, res.ramdisk) == (K1, I1)
        assert res.leftovers == []
    assert deprived.normalised() == plain.normalised()


def test_runas_worker_identity_in_debug_notes(images: ImageCache) -> None:
    _require_root()
    res = run_like_libxl(VIRTKIT_PYGRUB, str(images.get(GUEST)), runas=65534, bootloader_args=["--debug"])
    assert res.status == 0, res.stderr
    assert "worker identity: uid 65534, gid 65534, no supplementary groups" in res.stderr


def _descendants(root: int) -> dict[int, int]:
    """pid -> real uid of every live descendant of ``root`` (from /proc)."""
    parent: dict[int, int] = {}
    uid: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        m_pp = re.search(r"^PPid:\s+(\d+)", status, re.M)
        m_uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
        if m_pp and m_uid:
            parent[int(name)] = int(m_pp.group(1))
            uid[int(name)] = int(m_uid.group(1))
    out = {}
    for pid in parent:
        p, hops = pid, 0
        while p in parent and hops < 64:
            p, hops = parent[p], hops + 1
            if p == root:
                out[pid] = uid[pid]
                break
    return out


def test_runas_worker_really_runs_as_that_uid(images: ImageCache, tmp_path: Path) -> None:
    """Seen from outside: while the worker spins in a ``while true`` grub.cfg, /proc shows a
    descendant of virtkit-pygrub running as uid 65534; the parent stays root to write files."""
    _require_root()
    image = images.get(Guest.make({**FILES, "/boot/grub/grub.cfg": LOOP_CFG}))
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([*VIRTKIT_PYGRUB, "--runas=65534", "-q", "--limit=worker_timeout=4",
                             f"--output-directory={out}", str(image)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    seen: dict[int, int] = {}
    try:
        while proc.poll() is None and 65534 not in seen.values():  # until seen, or the worker timed out
            seen.update(_descendants(proc.pid))
            time.sleep(0.02)
    finally:
        _stdout, stderr = proc.communicate(timeout=60)
    assert 65534 in seen.values(), f"no descendant ran as uid 65534: {seen}"
    assert proc.returncode == 8, stderr
    assert b"worker timed out after 4 s" in stderr
    assert os.listdir(out) == []


def test_runas_with_an_image_the_uid_cannot_read(images: ImageCache, tmp_path: Path) -> None:
    """We open the image as root and hand the worker a descriptor, so a 0600 root-owned image works.
    pygrub's child bind-mounts the file and opens it as the uid: PermissionError - and its parent
    exits 0 with an empty result (the raw wait status bug, reference §1.5)."""
    _require_root()
    private = tmp_path / "private.img"
    private.write_bytes(images.get(GUEST).read_bytes())
    private.chmod(0o600)
    ours = run_like_libxl(VIRTKIT_PYGRUB, str(private), runas=65534)
    assert ours.status == 0, ours.stderr
    assert (ours.kernel, ours.ramdisk) == (K1, I1) and ours.leftovers == []
    if not Path(PYGRUB).exists():
        return
    theirs = run_like_libxl([PYGRUB], str(private), runas=65534)
    assert theirs.status == 0  # exit 0 ...
    assert theirs.output == b"" and theirs.records == {}  # ... with no result: libxl fails later, confusingly
    assert "PermissionError" in theirs.stderr


def test_runas_failure_is_not_success(images: ImageCache) -> None:
    """A failing run under --runas exits non-zero (pygrub's parent exits 0: 256 & 0xff)."""
    _require_root()
    image = images.get(Guest.make({"/boot/vmlinuz-6.1.0-2-amd64": K1}))
    ours = run_like_libxl(VIRTKIT_PYGRUB, str(image), runas=65534)
    assert ours.status == 5 and ours.output == b"" and ours.leftovers == []
    _one_line(ours.stderr)
    if Path(PYGRUB).exists():
        theirs = run_like_libxl([PYGRUB], str(image), runas=65534)
        assert theirs.status == 0 and theirs.output == b""


def test_runas_without_quiet(images: ImageCache) -> None:
    """pygrub refuses --runas without -q/--entry (its menu cannot be de-privileged); ours runs the
    worker as the uid either way (with no terminal it boots the default)."""
    _require_root()
    image = images.get(GUEST)
    res = run_like_libxl(VIRTKIT_PYGRUB, str(image), bootloader_args=["--runas=65534"])
    assert res.status == 0, res.stderr
    assert (res.kernel, res.ramdisk) == (K1, I1)
    if Path(PYGRUB).exists():
        theirs = run_like_libxl([PYGRUB], str(image), bootloader_args=["--runas=65534"])
        assert theirs.status == 1
        assert "In order to use --runas, you must also set --entry or -q" in theirs.stderr

