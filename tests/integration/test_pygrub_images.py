"""virtkit-pygrub's options that need a guest image, through the real CLI, one table row per case.

Each row runs the installed ``virtkit-pygrub`` (tests/pygrub_support.py) with
``--output-directory`` on an image built at test time with real tools, and asserts the exact
record (sxp, temp names normalised), the extracted kernel and ramdisk bytes, and what stderr
must and must not say.  A failing row names its exit status and message and must leave
nothing behind.  Each option has a row that shows its *effect*: the same image read without
the option gives something else (the ``baseline`` rows), so a flag that is ignored fails here.

``{output}`` in argv is replaced by a file in the test's directory; the record is then read
from that file and stdout must be empty.

The meta-test in test_pygrub_cli.py counts the options used here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_pygrub_side_by_side import BLS_FILES, WRONG, expected_record
from test_pygrub_side_by_side import I1 as BLS_I_NEW
from test_pygrub_side_by_side import I2 as BLS_I_OLD
from test_pygrub_side_by_side import K1 as BLS_K_NEW
from test_pygrub_side_by_side import K2 as BLS_K_OLD

from pygrub_support import VIRTKIT_PYGRUB, Guest, ImageCache, normalise, payload, run_direct

KA = payload("KERNEL A", 20_001)
IA = payload("INITRD A", 9_002)
KB = payload("KERNEL B", 15_003)

BASE_CFG = """\
set default=0
set timeout=5
menuentry 'Debian GNU/Linux' --id debian {
	linux /boot/vmlinuz-a root=/dev/xvda1 ro quiet
	initrd /boot/initrd-a
}
menuentry 'Debian GNU/Linux, old kernel' --id old {
	linux /boot/vmlinuz-b root=/dev/xvda1 ro
}
"""
# A second configuration that discovery ranks below grub.cfg: only --config reaches it.
BASE_EXTLINUX = "DEFAULT rescue\nLABEL rescue\n KERNEL /boot/vmlinuz-b\n APPEND root=/dev/xvda1 from-extlinux\n"
BASE_FILES: dict[str, bytes | str] = {"/boot/grub/grub.cfg": BASE_CFG, "/boot/extlinux/extlinux.conf": BASE_EXTLINUX,
                                      "/boot/vmlinuz-a": KA, "/boot/initrd-a": IA, "/boot/vmlinuz-b": KB}
BASE = Guest.make(BASE_FILES, disk="mbr")  # root filesystem at 1 MiB, device (hd0,msdos1)
BASE_QCOW2 = Guest.make(BASE_FILES, disk="mbr", image_format="qcow2")
A_ARGS = "root=/dev/xvda1 ro quiet"

# GRUB sets grub_platform; a config that tests it boots a different entry per platform.
PLATFORM_CFG = """\
set default=0
if [ "$grub_platform" = xen ]; then set default=1; fi
if [ "$grub_platform" = efi ]; then set default=2; fi
menuentry 'pc' { linux /boot/vmlinuz-a root=/dev/xvda1 platform=$grub_platform }
menuentry 'xen' { linux /boot/vmlinuz-a root=/dev/xvda1 chosen-on-xen }
menuentry 'efi' { linux /boot/vmlinuz-b root=/dev/xvda1 chosen-on-efi }
"""
PLATFORM = Guest.make({"/boot/grub/grub.cfg": PLATFORM_CFG, "/boot/vmlinuz-a": KA, "/boot/vmlinuz-b": KB})

# Fedora's blscfg config (the side-by-side "bls" row): saved_entry names the older snippet by id.
# Fedora's rules match ids first; upstream GRUB reads the id "0123..." as a number, out of
# range, so entry 0 (the newest kernel).
BLS = Guest.make(BLS_FILES, disk="gpt")
BLS_ARGS = "root=UUID=6c2f6b0e-4f2b-4a64-9d1e-2b0c3e5a7d11 ro rhgb quiet"

# default=1 is a number to upstream GRUB (entry B) and the id of entry A to Fedora's GRUB.
IDS_CFG = "set default=1\nmenuentry 'A' --id 1 { linux /boot/vmlinuz-a id-one }\nmenuentry 'B' --id b { linux /boot/vmlinuz-b id-b }\n"
IDS = Guest.make({"/boot/grub/grub.cfg": IDS_CFG, "/boot/vmlinuz-a": KA, "/boot/vmlinuz-b": KB})

# ``initrd a b``: the side-by-side "multiple-initrds" row's guest and the ramdisk GRUB would load.
MULTI = next(w for w in WRONG if w.id == "multiple-initrds")
assert MULTI.kernel is not None and MULTI.ramdisk is not None

WORKER_NOTE = r"(?m)^virtkit-pygrub: worker (namespaces|chroot|identity|capabilities|rlimits|seccomp|isolation: off \(worker process)"
IN_PROCESS = r"loading '\(hd0,msdos1\)/boot/grub/grub\.cfg' with grub2"  # the parser's own log line, seen only in-process
NO_TERMINAL = "no terminal for the interactive menu: booting the default entry"
CONCATENATED = r"(?m)^virtkit-pygrub: 2 initrds concatenated into one ramdisk \(4-byte aligned\)"


@dataclass(frozen=True)
class Case:
    id: str
    guest: Guest
    argv: tuple[str, ...]
    kernel: bytes | None = None  # None: the run must fail with ``status``
    ramdisk: bytes | None = None
    args: str = ""
    status: int = 0
    stderr: str = ""  # regex stderr must match; "" on a successful run: stderr must be empty
    not_stderr: str = ""  # regex stderr must not match


CASES = [
    # -- --image-format: detected by default; forcing it reads the bytes as that format -----------
    Case("qcow2-detected-baseline", BASE_QCOW2, ("-q",), KA, IA, A_ARGS),
    Case("image-format-qcow2", BASE_QCOW2, ("-q", "--image-format=qcow2"), KA, IA, A_ARGS),
    Case("image-format-raw-on-qcow2", BASE_QCOW2, ("-q", "--image-format=raw"), status=5,
         stderr=r"error: the guest has no readable filesystem, so no boot-loader configuration$"),
    Case("image-format-raw", BASE, ("-q", "--image-format=raw"), KA, IA, A_ARGS),
    Case("image-format-qcow2-on-raw", BASE, ("-q", "--image-format=qcow2"), status=3,
         stderr=r"error: \S+/disk\.img: not a qcow2 image \(no QFI\\xfb magic\)$"),
    Case("image-format-unknown", BASE, ("-q", "--image-format=vmdk"), status=2,
         stderr=r"error: unknown image format 'vmdk'; use one of: raw, qcow2$"),
    # -- --platform: GRUB's $grub_platform (pc unless the config sits on an ESP) ------------------
    Case("platform-baseline-pc", PLATFORM, ("-q",), KA, None, "root=/dev/xvda1 platform=pc"),
    Case("platform-pc", PLATFORM, ("-q", "--platform=pc"), KA, None, "root=/dev/xvda1 platform=pc"),
    Case("platform-xen", PLATFORM, ("-q", "--platform=xen"), KA, None, "root=/dev/xvda1 chosen-on-xen"),
    Case("platform-efi", PLATFORM, ("-q", "--platform=efi"), KB, None, "root=/dev/xvda1 chosen-on-efi"),
    Case("platform-unknown", PLATFORM, ("-q", "--platform=arm"), status=2,
         stderr=r"error: --platform arm: expected one of pc, xen, efi$"),
    # -- --flavour: GRUB 2's default-entry rules (automatic: fedora when the config runs blscfg) --
    Case("flavour-bls-baseline", BLS, ("-q",), BLS_K_OLD, BLS_I_OLD, BLS_ARGS),
    Case("flavour-bls-fedora", BLS, ("-q", "--flavour=fedora"), BLS_K_OLD, BLS_I_OLD, BLS_ARGS),
    Case("flavour-bls-upstream", BLS, ("-q", "--flavour=upstream"), BLS_K_NEW, BLS_I_NEW, BLS_ARGS),
    Case("flavour-ids-baseline", IDS, ("-q",), KB, None, "id-b"),
    Case("flavour-ids-fedora", IDS, ("-q", "--flavour=fedora"), KA, None, "id-one"),
    Case("flavour-unknown", IDS, ("-q", "--flavour=suse"), status=2,
         stderr=r"error: --flavour suse: expected one of upstream, fedora$"),
    # -- --config: one configuration, named as DEVICE:PATH, (DEVICE)/PATH or a bare path ----------
    Case("config-baseline", BASE, ("-q",), KA, IA, A_ARGS),
    Case("config-bare-path", BASE, ("-q", "--config=/boot/extlinux/extlinux.conf"), KB, None,
         "root=/dev/xvda1 from-extlinux"),
    Case("config-device-path", BASE, ("-q", "--config=hd0,msdos1:/boot/extlinux/extlinux.conf"), KB, None,
         "root=/dev/xvda1 from-extlinux"),
    Case("config-grub-syntax", BASE, ("-q", "--config=(hd0,msdos1)/boot/extlinux/extlinux.conf"), KB, None,
         "root=/dev/xvda1 from-extlinux"),
    Case("config-missing", BASE, ("-q", "--config=/nope.cfg"), status=2,
         stderr=r"error: --config /nope\.cfg: no device has /nope\.cfg \(devices: hd0,msdos1\)$"),
    Case("config-not-a-config", BASE, ("-q", "--config=hd0,msdos1:/boot/vmlinuz-b"), status=5,
         stderr=r"error: \(hd0,msdos1\)/boot/vmlinuz-b: not recognisable as a boot-loader configuration"),
    # -- --no-isolate: no worker; the parser runs (and logs) in this process -----------------------
    Case("debug-isolated-baseline", BASE, ("-q", "--debug"), KA, IA, A_ARGS, stderr=WORKER_NOTE,
         not_stderr=IN_PROCESS + "|concatenated"),
    Case("no-isolate", BASE, ("-q", "--no-isolate"), KA, IA, A_ARGS),
    Case("no-isolate-debug", BASE, ("-q", "--no-isolate", "--debug"), KA, IA, A_ARGS, stderr=IN_PROCESS,
         not_stderr=WORKER_NOTE),
    # -- -i/--interactive without a terminal: the default entry, said at debug level only ---------
    Case("interactive-short", BASE, ("-q", "-i", "--debug"), KA, IA, A_ARGS, stderr=NO_TERMINAL),
    Case("interactive-long", BASE, ("--interactive", "--debug"), KA, IA, A_ARGS, stderr=NO_TERMINAL),
    Case("interactive-silent-without-debug", BASE, ("-i",), KA, IA, A_ARGS),
    Case("quiet-after-interactive", BASE, ("-i", "-q", "--debug"), KA, IA, A_ARGS, stderr=r"chose entry 0",
         not_stderr=NO_TERMINAL),
    Case("interactive-with-entry", BASE, ("-i", "--entry=old", "--debug"), KB, None, "root=/dev/xvda1 ro",
         stderr=r"chose entry 1", not_stderr=NO_TERMINAL),  # --entry implies non-interactive, as in pygrub
    # -- several initrds: one ramdisk, and --debug says so ----------------------------------------
    Case("multiple-initrds-debug", MULTI.guest, ("-q", "--debug"), MULTI.kernel, MULTI.ramdisk, MULTI.args,
         stderr=CONCATENATED),
    Case("multiple-initrds", MULTI.guest, ("-q",), MULTI.kernel, MULTI.ramdisk, MULTI.args),
    # -- --offset: the filesystem starts at this byte (pygrub's way to skip a partition table) ----
    Case("offset", BASE, ("-q", "--offset=1048576"), KA, IA, A_ARGS),
    Case("offset-not-a-filesystem", BASE, ("-q", "--offset=4096"), status=5,
         stderr=r"error: the guest has no readable filesystem"),
    Case("offset-outside", BASE, ("-q", "--offset=999999999999"), status=2,
         stderr=r"error: --offset 999999999999 is outside the \d+-byte disk$"),
    # -- --output, XenServer's --default_args/--extra_args -----------------------------------------
    Case("output-file", BASE, ("-q", "--output={output}"), KA, IA, A_ARGS),
    Case("output-dash-is-stdout", BASE, ("-q", "--output=-"), KA, IA, A_ARGS),
    Case("xenserver-args", BASE, ("-q", "--default_args=console=hvc0", "--extra_args=xencons=tty"), KA, IA,
         A_ARGS + " console=hvc0 xencons=tty"),
]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    return ImageCache(tmp_path_factory.mktemp("pygrub-images"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_image_case(case: Case, images: ImageCache, tmp_path: Path) -> None:
    image = images.get(case.guest)
    output = tmp_path / "record.out"
    argv = [a.replace("{output}", str(output)) for a in case.argv]
    res = run_direct(VIRTKIT_PYGRUB, image, argv, tmp_path / "out")
    assert res.status == case.status, res.stderr
    assert "Traceback" not in res.stderr
    if case.stderr:
        assert re.search(case.stderr, res.stderr), res.stderr
    elif case.status == 0:
        assert res.stderr == ""
    if case.not_stderr:
        assert not re.search(case.not_stderr, res.stderr), res.stderr
    if case.kernel is None:
        assert case.status != 0, "a row without a kernel must fail"
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert res.stdout == b""
        assert res.files == {}, "a failed run left files behind"
        assert not output.exists()
        return
    if "{output}" in " ".join(case.argv):
        assert res.stdout == b""
        record = normalise(output.read_bytes(), res.outdir)
    else:
        record = res.normalised()
    assert record == expected_record(case.kernel, case.ramdisk, case.args, "sxp")
    assert res.file("kernel") == case.kernel
    assert res.file("ramdisk") == case.ramdisk
    assert len(res.files) == 1 + (case.ramdisk is not None)


def test_cases_are_unique_and_failing_rows_name_their_error() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    for c in CASES:
        assert (c.kernel is None) == (c.status != 0), c.id
        if c.status:
            assert c.stderr.startswith("error: "), c.id
