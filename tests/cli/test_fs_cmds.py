"""``virtkit ls`` and ``virtkit cat``: one table row per case, golden outputs, every flag covered.

Placeholders in argv: {fat16} {fat4k} {iso} {lvm} (fixture images; lvm is the volume
stage's MBR + LVM image), {dir} (the shared
/boot tree written to a temporary directory, plus a file whose name holds an
escape sequence), {missing} (a path that does not exist).  The bundled sample
guest is used when no image is given.  Goldens live in tests/golden/cli/fs/;
``pytest --regenerate-golden`` rewrites them.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fs_contract import boot_tree
from helpers import ROOT, assert_golden, fixture_path, run_cli
from virtkit.cli.fs_cmds import PathSpec, parse_path_spec
from virtkit.cli.main import build_parser
from virtkit.errors import UsageError


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    status: int = 0
    golden: str | None = None  # stdout compared with tests/golden/cli/fs/<golden>
    stdout: bytes | None = None  # ... or with these exact bytes
    sha256: str | None = None  # ... or with this digest
    stderr: str | None = None  # regex that stderr must match (failing cases: the message)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


VMLINUZ = digest(boot_tree.file_bytes("vmlinuz-6.1.0-28-amd64", boot_tree.FILES["vmlinuz-6.1.0-28-amd64"]))
GRUB_CFG = boot_tree.TEXT_FILES["grub/grub.cfg"].encode()
SPARSE = digest(boot_tree.sparse_bytes("sparse.img"))
SAMPLE = "no IMAGE given: using the bundled sample guest image"

CASES = [
    # -- ls: volumes chosen every way ------------------------------------------------------
    Case("ls-sample-first-volume", ("ls", "/"), golden="ls-sample-root.txt", stderr=SAMPLE),
    Case("ls-sample-partition-number", ("ls", "3:/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-volume-name", ("ls", "disk0p3:/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-grub-device", ("ls", "(hd0,gpt3)/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-grub-device-colon", ("ls", "hd0,gpt3:/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-label", ("ls", "boot:/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-uuid", ("ls", "8E5F4C2A-1B3D-4E6F-9A7B-0C1D2E3F4A5B:/"), golden="ls-sample-boot.txt"),
    Case("ls-sample-fat-uuid", ("ls", "1A2B-3C4D:/EFI/debian"), golden="ls-sample-esp.txt"),
    Case("ls-lvm-vg-lv", ("ls", "{lvm}", "vg-sys/root:/"), stdout=b"grub\nlost+found\nvolume-id\n"),
    Case("cat-lvm-vg-lv", ("cat", "{lvm}", "vg-sys/multi-seg:/volume-id"), stdout=b"vg-sys/multi-seg\n"),
    Case("cat-lvm-grub-device", ("cat", "{lvm}", "(lvm/vg--sys-root)/volume-id"), stdout=b"vg-sys/root\n"),
    Case("ls-sample-searches-volumes", ("ls", "/grub"), golden="ls-sample-grub.txt"),
    Case("ls-sample-relative", ("ls", "grub"), golden="ls-sample-grub.txt"),
    # -- ls: output forms ----------------------------------------------------------------
    Case("ls-fat-names", ("ls", "{fat16}", "/names"), golden="ls-fat16-names.txt"),
    Case("ls-fat-long", ("ls", "-l", "{fat16}", "/names"), golden="ls-fat16-names-long.txt"),
    Case("ls-fat-json", ("ls", "--json", "{fat16}", "/grub"), golden="ls-fat16-grub.json"),
    Case("ls-iso-long", ("ls", "--long", "{iso}", "/"), golden="ls-iso-root-long.txt"),
    Case("ls-iso-json", ("ls", "--json", "{iso}", "/grub"), golden="ls-iso-grub.json"),
    Case("ls-iso-one-file", ("ls", "{iso}", "/grub/grub.cfg"), stdout=b"grub.cfg\n"),
    # btrfs: paths from the top level (as GRUB and virtkit boot name them), or as a mount shows them
    Case("ls-btrfs-top-level", ("ls", "{suse}", "/"), stdout=b"@\n"),
    Case("ls-btrfs-snapshot-path", ("ls", "{suse}", "/@/.snapshots/1/snapshot/boot/vmlinuz-6.1.0-28-amd64"),
         stdout=b"vmlinuz-6.1.0-28-amd64\n"),
    Case("ls-btrfs-default-subvolume", ("ls", "--default-subvolume", "{suse}", "/"), stdout=b"boot\n"),
    Case("cat-btrfs-default-subvolume", ("cat", "--default-subvolume", "{suse}", "/boot/grub/grub.cfg"),
         stdout=GRUB_CFG),
    Case("cat-btrfs-snapshot-path", ("cat", "{suse}", "/@/.snapshots/1/snapshot/boot/grub/grub.cfg"), stdout=GRUB_CFG),
    Case("ls-btrfs-boot-not-at-top", ("ls", "{suse}", "/boot"), status=4, stderr=r"/boot: no such file or directory"),
    Case("ls-iso-symlink", ("ls", "{iso}", "/long-link"), stdout=b"long-link\n"),
    Case(
        "ls-iso-symlink-long",
        ("ls", "-l", "{iso}", "/vmlinuz"),
        stdout=b"lrwxrwxrwx 22 2023-11-14 22:13 vmlinuz -> vmlinuz-6.1.0-28-amd64\n",
    ),
    Case("ls-dir", ("ls", "{dir}", "/"), golden="ls-dir-root.txt"),
    Case("ls-dir-volume", ("ls", "{dir}", "dir0:/grub"), golden="ls-dir-grub.txt"),
    Case(
        "ls-dir-long-file",
        ("ls", "-l", "{dir}", "/grub/grub.cfg"),
        stdout=b"-rw-r--r-- 152 2023-11-14 22:13 grub.cfg\n",
    ),
    # -- ls: the shared image options ----------------------------------------------------------
    Case("ls-format-raw", ("ls", "--image-format", "raw", "{fat16}", "/names"), golden="ls-fat16-names.txt"),
    Case("ls-sector-size", ("ls", "--sector-size", "4096", "{fat4k}", "/names"), golden="ls-fat4k-names.txt"),
    Case(
        "ls-format-qcow2-wrong",
        ("ls", "--image-format", "qcow2", "{fat16}", "/"),
        status=3,
        stderr=r"not a qcow2 image",
    ),
    Case("ls-backing-missing", ("ls", "--backing", "{missing}", "{fat16}", "/"), status=3, stderr=r"cannot open image .*missing"),
    Case(
        "ls-limit",
        ("ls", "--limit", "max_dir_entries=2", "{fat16}", "/names"),
        status=3,
        stderr=r"no readable filesystem in the guest \(disk0: .*exceeds the max_dir_entries limit of 2",
    ),
    Case(
        "ls-limit-listing",
        ("ls", "--limit", "max_dir_entries=16", "{fat16}", "/deep/a"),
        stdout=b"b\n",
    ),
    Case("ls-limit-bad", ("ls", "--limit", "max_dir_entries", "{fat16}", "/"), status=2, stderr=r"--limit wants NAME=VALUE"),
    # -- ls: failures --------------------------------------------------------------------------
    Case("ls-empty-path", ("ls", "{fat16}", ""), status=2, stderr=r"the path is empty"),
    Case("ls-unclosed-device", ("ls", "(hd0,gpt2"), status=2, stderr=r"unclosed '\('"),
    Case("ls-empty-volume", ("ls", ":/grub"), status=2, stderr=r"volume name before the path is empty"),
    Case("ls-no-such-volume", ("ls", "9:/"), status=3, stderr=r"no volume '9' \(volumes that may hold a filesystem: disk0p1"),
    Case("ls-volume-without-fs", ("ls", "1:/"), status=3, stderr=r"volume disk0p1 holds no readable filesystem"),
    Case(
        "ls-not-found",
        ("ls", "/nope"),
        status=4,
        stderr=r"/nope: no such file or directory on any volume \(searched disk0p2 \(vfat\), disk0p3 \(ext4\), "
        r"disk0p4 \(ext4\); unreadable: disk0p1\)",
    ),
    Case("ls-not-found-on-volume", ("ls", "{iso}", "disk0:/nope"), status=4, stderr=r"/nope not found \(no 'nope'\)"),
    Case("ls-symlink-loop", ("ls", "{dir}", "/loop-a"), status=3, stderr=r"exceeds the max_symlink_hops limit of 40"),
    Case("ls-missing-image", ("ls", "{missing}", "/"), status=3, stderr=r"cannot open image .*missing"),
    Case(
        "ls-dir-and-image",
        ("ls", "{dir}", "{fat16}", "/"),
        status=2,
        stderr=r"a directory can only be given alone",
    ),
    Case("ls-no-path", ("ls",), status=2, stderr=r"the following arguments are required"),
    # -- cat -------------------------------------------------------------------------------------
    Case("cat-fat", ("cat", "{fat16}", "/grub/grub.cfg"), stdout=GRUB_CFG),
    Case("cat-fat-case-insensitive", ("cat", "{fat16}", "/GRUB/GRUB.CFG"), stdout=GRUB_CFG),
    Case("cat-iso-symlink", ("cat", "{iso}", "/vmlinuz"), sha256=VMLINUZ),
    Case("cat-dir-absolute-symlink", ("cat", "{dir}", "/initrd.img"), sha256=digest(
        boot_tree.file_bytes("initrd.img-6.1.0-28-amd64", boot_tree.FILES["initrd.img-6.1.0-28-amd64"])
    )),
    Case("cat-big-file", ("cat", "{fat16}", "/sparse.img"), sha256=SPARSE),
    Case("cat-sample", ("cat", "2:/EFI/debian/grub.cfg"), golden="cat-sample-esp-grub.cfg", stderr=SAMPLE),
    Case("cat-format", ("cat", "--image-format", "raw", "{fat16}", "/grub/grub.cfg"), stdout=GRUB_CFG),
    Case("cat-sector-size", ("cat", "--sector-size", "512", "{fat16}", "/grub/grub.cfg"), stdout=GRUB_CFG),
    Case("cat-backing-missing", ("cat", "--backing", "{missing}", "{fat16}", "/grub/grub.cfg"), status=3, stderr=r"cannot open image"),
    Case(
        "cat-limit",
        ("cat", "--limit", "max_file_bytes=100", "{fat16}", "/grub/grub.cfg"),
        status=3,
        stderr=r"152 exceeds the max_file_bytes limit of 100",
    ),
    Case("cat-directory", ("cat", "{fat16}", "/grub"), status=4, stderr=r"/grub is a directory \(use virtkit ls\)"),
    Case("cat-not-found", ("cat", "{fat16}", "/grub/nope"), status=4, stderr=r"/grub/nope: no such file or directory"),
    Case("cat-escape-stays-inside", ("cat", "{dir}", "/escape"), status=4, stderr=r"/escape: no such file or directory"),
    Case("cat-no-path", ("cat",), status=2, stderr=r"the following arguments are required"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fscmds")
    tree = root / "boot"
    tree.mkdir()
    boot_tree.build(tree)
    evil = tree / "evil-\x1b[31mred"
    evil.write_bytes(b"x")
    os.utime(evil, (1700000000, 1700000000))
    os.utime(tree, (1700000000, 1700000000))
    return {
        "fat16": str(fixture_path("fat/fat16.img.gz")),
        "fat4k": str(fixture_path("fat/fat12-4k.img.gz")),
        "iso": str(fixture_path("iso9660/rr-joliet.iso.gz")),
        "suse": str(fixture_path("btrfs/layout-opensuse.img.gz")),
        "lvm": str(fixture_path("volume/lvm.img.gz")),
        "dir": str(tree),
        "missing": str(root / "missing.img"),
    }


def run(argv: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes, str]:
    status, out, err = run_cli(argv, capfdbinary)
    return status, out, err.decode("utf-8", "replace")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case: Case, places: dict[str, str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    argv = [a.format(**places) for a in case.argv]
    status, out, err = run(argv, capfdbinary)
    assert status == case.status, err
    if case.stderr is not None:
        assert re.search(case.stderr, err), err
    if case.status != 0:
        assert "Traceback" not in err and "internal error" not in err
        assert out == b""
    if case.golden is not None:
        assert_golden(out, f"cli/fs/{case.golden}")
    if case.stdout is not None:
        assert out == case.stdout
    if case.sha256 is not None:
        assert digest(out) == case.sha256


def test_names_are_sanitised(places: dict[str, str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    for argv in (["ls", places["dir"], "/"], ["ls", "-l", places["dir"], "/"]):
        status, out, _ = run(argv, capfdbinary)
        assert status == 0
        assert b"\x1b" not in out and b"evil-\\x1b[31mred" in out
    status, out, _ = run(["ls", "--json", places["dir"], "/"], capfdbinary)
    assert status == 0 and b"\x1b" not in out and b'"evil-\\u001b[31mred"' in out


def test_json_non_utf8_name(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"bad-\xff.txt"), "wb") as f:
        f.write(b"")
    status, out, _ = run(["ls", "--json", str(tmp_path), "/"], capfdbinary)
    assert status == 0
    assert b'"name": "bad-\\ufffd.txt"' in out and b'"name_hex": "6261642dff2e747874"' in out


def test_every_flag_has_a_case() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("ls", "cat"):
        options = {
            opt
            for action in sub.choices[command]._actions  # type: ignore[union-attr]
            for opt in action.option_strings
            if opt not in ("-h", "--help")
        }
        used = {arg for case in CASES if case.argv[:1] == (command,) for arg in case.argv}
        assert options <= used, f"{command}: flags without a case: {sorted(options - used)}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/boot", PathSpec(None, "/boot")),
        ("/a:b", PathSpec(None, "/a:b")),
        ("boot/grub", PathSpec(None, "/boot/grub")),
        ("2:/grub", PathSpec("2", "/grub")),
        ("2:", PathSpec("2", "/")),
        ("vg0/boot:/grub", PathSpec("vg0/boot", "/grub")),
        ("(hd0,gpt2)/EFI", PathSpec("hd0,gpt2", "/EFI")),
        ("(hd0,gpt2)", PathSpec("hd0,gpt2", "/")),
        ("hd0,msdos1:grub", PathSpec("hd0,msdos1", "/grub")),
        ("1234-ABCD:/EFI", PathSpec("1234-ABCD", "/EFI")),
    ],
)
def test_parse_path_spec(spec: str, expected: PathSpec) -> None:
    assert parse_path_spec(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [("", "empty"), ("(hd0", "unclosed"), (":/x", "volume name")])
def test_parse_path_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_path_spec(spec)


def test_cat_into_a_closed_pipe_is_quiet(places: dict[str, str]) -> None:
    # `virtkit cat big | head -c 10`: cat stops quietly when the reader goes away.
    proc = subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli.main", "cat", places["fat16"], "/sparse.img"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert len(first) == 10 and b"Traceback" not in err and b"error" not in err
