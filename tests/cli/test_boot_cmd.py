"""``virtkit boot [list|explain]``: one table row per case, goldens, every flag covered (meta-test at the end).

Placeholders in argv: {legacy} {ext} {multi} {empty} {sdboot} (configuration trees written to temporary
directories, read through HostDirectory as device hd0), {img} (tests/data/config/legacy-esp.img.gz: a real
MBR disk with an ext2 /boot and a FAT ESP), {tmp} (the directory holding them).  No IMAGE means the bundled
sample guest.  Goldens live in tests/golden/cli/boot/; ``pytest --regenerate-golden`` rewrites them
(a missing golden is written and the test fails, so a new one is always reviewed).  Every ``--format``
has a golden of ``extract`` on {img} (``extract-<format>.*``), with the temporary file names normalised
to ``boot_kernel.XXXXXXXX`` after checking that they name the files extracted.

Options and IMAGEs may come in any order (cli/main.py parses subcommands with
parse_intermixed_args).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import assert_golden, fixture_path, run_cli
from virtkit.cli.main import build_parser

LEGACY = {
    "grub/menu.lst": "default 1\ntimeout 5\ntitle Old\nroot (hd0,0)\nkernel /vmlinuz-old ro root=/dev/xvda1\n"
                     "title New\nroot (hd0,0)\nkernel /vmlinuz-new ro root=/dev/xvda1 quiet\ninitrd /initrd-new\n"
                     "title Xen\nkernel /xen.gz\nmodule /vmlinuz-new\n",
    "vmlinuz-old": "", "vmlinuz-new": "", "initrd-new": "", "xen.gz": "",
}
EXT = {
    "extlinux.conf": "UI menu.c32\nTIMEOUT 30\nDEFAULT lts\nLABEL virt\n MENU LABEL Linux ^virt\n LINUX vmlinuz-virt\n"
                     " INITRD initramfs-virt\n APPEND root=/dev/xvda2\nLABEL lts\n MENU LABEL Linux lts\n"
                     " LINUX vmlinuz-lts\n INITRD ucode.img,initramfs-lts\n APPEND root=/dev/xvda2 quiet\n",
    "vmlinuz-virt": "", "initramfs-virt": "", "vmlinuz-lts": "", "initramfs-lts": "", "ucode.img": "",
}
MULTI = {
    **LEGACY,
    "boot/extlinux/extlinux.conf": "DEFAULT a\nLABEL a\n KERNEL ../../vmlinuz-new\n",
    "etc/lilo.conf": "image=/vmlinuz-old\n label=lilo-old\n",
}
SDBOOT = {
    "loader/loader.conf": "default b*\ntimeout 2\n",
    "loader/entries/a.conf": "title A\nlinux /vmlinuz-new\noptions ro\n",
    "loader/entries/b.conf": "title B\nlinux /vmlinuz-new\noptions ro single\n",
    "vmlinuz-new": "",
}
SAMPLE = "no IMAGE given: using the bundled sample guest image"
# The extraction goldens: one per --format (and its file extension), with arguments that need quoting.
GOLDEN_FORMATS = {"text": "txt", "json": "json", "sxp": "txt", "simple": "txt", "simple0": "bin", "qemu": "txt",
                  "libvirt": "xml"}
GOLDEN_ARGS = "console=hvc0 x='a b' y=\"<&>\""
TEMP_NAME = re.compile(r"boot_(kernel|ramdisk)\.[a-z0-9_]{8}")
STABLE_NAME = re.compile(r"\b(?:vmlinuz|initrd\.img)\b")


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    status: int = 0
    golden: str | None = None  # stdout compared with tests/golden/cli/boot/<golden>
    stdout: str | None = None  # regex stdout must match
    stderr: str | None = None  # regex stderr must match (failing cases: the message)
    json_default: str | None = None  # with --json: the default_path_str


CASES = [
    # -- actions -------------------------------------------------------------------------------
    Case("options-between-action-and-image", ("boot", "extract", "--to", "{out}", "--format", "json", "{legacy}"),
         stdout=r'"path_str": "1",'),
    # a machine format prints only the result, no menu tree (it stays parseable)
    Case("run", ("boot", "run", "{ext}", "--to", "{out}", "--format", "qemu"), stdout=r"\A-kernel {out}/boot_kernel\.\w{8} [^\n]*\n\Z"),
    Case("run-is-the-default-action", ("boot", "{legacy}", "--to", "{out}"), stdout=r"(?s)^grub-legacy menu from .*\nextracted \[1\] 'New'\n  kernel   {out}/boot_kernel\.\w{8}  <- \(hd0\)/vmlinuz-new\n"),
    Case("list", ("boot", "list", "{legacy}"), golden="legacy-list.txt"),
    Case("list-json", ("boot", "list", "{legacy}", "--json"), golden="legacy-list.json", json_default="1"),
    Case("explain", ("boot", "explain", "{legacy}"), golden="legacy-explain.txt"),
    Case("explain-json", ("boot", "explain", "{ext}", "--json"), json_default="1"),
    Case("extlinux-list", ("boot", "list", "{ext}"), golden="ext-list.txt"),
    Case("extlinux-explain", ("boot", "explain", "{ext}"), golden="ext-explain.txt"),
    Case("sdboot-list", ("boot", "list", "{sdboot}"), stdout=r"(?m)^\* \[0\] B  \(id b\.conf\)$"),
    Case("several-configs-explained", ("boot", "explain", "{multi}"), golden="multi-explain.txt"),
    Case("sample-guest", ("boot", "list"), golden="sample-list.txt", stderr=SAMPLE),
    Case("sample-guest-run", ("boot",), stderr=SAMPLE, stdout=r"extracted \[1>2\] 'Debian GNU/Linux, with Linux 5\.10\.0-30-amd64'"),
    Case("sample-guest-explain", ("boot", "explain"), stdout=r"configuration: grub2 \(hd0,gpt3\)/grub/grub\.cfg"),
    Case("real-disk-image", ("boot", "explain", "{img}"), golden="image-explain.txt"),
    Case("real-disk-image-json", ("boot", "list", "{img}", "--json"), json_default="1"),
    Case("action-word-as-directory", ("boot", "list", "list"), golden="legacy-list.txt"),
    # -- options -------------------------------------------------------------------------------
    Case("entry-index", ("boot", "list", "{legacy}", "--entry", "0"), stdout=r"selected by --entry: \[0\] 'Old'\n$"),
    Case("entry-title-explain", ("boot", "explain", "{legacy}", "--entry", "New"), stdout=r"--entry 'New' -> \[1\] 'New'"),
    Case("entry-json", ("boot", "list", "{ext}", "--json", "--entry", "virt"),
         stdout=r'"selection": \{\n    "spec": "virt",\n    "path": \[\n      0\n    \],'),
    Case("entry-unknown", ("boot", "{legacy}", "--entry", "nope"), status=6,
         stderr=r"--entry 'nope' matches nothing: nothing at the top level has the id or title 'nope'; choose one of: "
                r"\[0\] 'Old' \[linux\], \[1\] 'New' \[linux\], \[2\] 'Xen' \[xen\]"),
    Case("entry-unknown-explain", ("boot", "explain", "{legacy}", "--entry", "9"), status=6,
         stderr=r"the top level has 3 item\(s\), no index 9"),
    Case("config-forced", ("boot", "explain", "{multi}", "--config", "hd0:/etc/lilo.conf"),
         stdout=r"configuration: lilo \(hd0\)/etc/lilo\.conf\n  chosen because: named by the operator \(lilo\.conf\)"),
    Case("config-grub-syntax", ("boot", "list", "{multi}", "--config", "(hd0)/boot/extlinux/extlinux.conf"),
         stdout=r"^extlinux menu from \(hd0\)/boot/extlinux/extlinux\.conf"),
    Case("config-bare-path", ("boot", "list", "{multi}", "--config", "/etc/lilo.conf"), stdout=r"^lilo menu"),
    Case("config-unknown-device", ("boot", "{multi}", "--config", "hd7:/x"), status=2,
         stderr=r"--config hd7:/x: no device 'hd7'; devices: hd0"),
    Case("config-missing", ("boot", "{multi}", "--config", "/nope.cfg"), status=2,
         stderr=r"--config /nope\.cfg: no device has /nope\.cfg \(devices: hd0\)"),
    Case("config-not-a-config", ("boot", "{multi}", "--config", "hd0:/vmlinuz-old"), status=5,
         stderr=r"\(hd0\)/vmlinuz-old: not recognisable as a boot-loader configuration"),
    Case("platform-efi", ("boot", "explain", "{legacy}", "--platform", "efi"), stdout=r"default: \[1\] 'New'"),
    Case("platform-bad", ("boot", "{legacy}", "--platform", "arm"), status=2,
         stderr=r"argument --platform: invalid choice: 'arm' \(choose from 'pc', 'xen', 'efi'\)"),
    Case("flavour", ("boot", "list", "{legacy}", "--flavour", "fedora"), golden="legacy-list.txt"),
    Case("flavour-bad", ("boot", "{legacy}", "--flavour", "suse"), status=2, stderr=r"argument --flavour: invalid choice"),
    Case("set-variable", ("boot", "list", "{legacy}", "--set", "saved_entry=1", "--set", "x="), golden="legacy-list.txt"),
    Case("set-bad", ("boot", "{legacy}", "--set", "no-equals"), status=2,
         stderr=r"--set wants VAR=VALUE with a variable name of letters, digits and _, got 'no-equals'"),
    Case("set-bad-name", ("boot", "{legacy}", "--set", "1x=2"), status=2, stderr=r"got '1x=2'"),
    Case("limit", ("boot", "{legacy}", "--limit", "max_config_bytes=64"), status=3,
         stderr=r"\(hd0\)/grub/menu\.lst: \d+ exceeds the max_config_bytes limit of 64 \(raise it with --limit max_config_bytes=N\)"),
    Case("limit-menu-entries", ("boot", "{legacy}", "--limit", "max_menu_entries=2"), status=3,
         stderr=r"3 exceeds the max_menu_entries limit of 2"),
    Case("format-raw", ("boot", "--image-format", "raw", "list", "{img}"), stdout=r"^grub-legacy menu from \(hd0,msdos1\)/grub/grub\.conf"),
    Case("format-qcow2-wrong", ("boot", "--image-format", "qcow2", "{img}"), status=3, stderr=r"not a qcow2 image"),
    Case("sector-size", ("boot", "--sector-size", "512", "list", "{img}"), stdout=r"^grub-legacy menu"),
    Case("backing-on-raw", ("boot", "--backing", "{img}", "{img}"), status=2,
         stderr=r"--backing only applies to qcow2 images"),
    # -- extraction ----------------------------------------------------------------------------
    Case("extract-text", ("boot", "extract", "{legacy}", "--to", "{out}"), stdout=r"^extracted \[1\] 'New'\n"),
    Case("extract-json", ("boot", "extract", "{legacy}", "--to", "{out}", "--format", "json"),
         stdout=r'"path_str": "1",\n    "title": "New",'),
    Case("extract-simple0", ("boot", "extract", "{legacy}", "--to", "{out}", "--format", "simple0"),
         stdout=r"^kernel {out}/boot_kernel\.\w{8}\x00ramdisk {out}/boot_ramdisk\.\w{8}\x00args ro root=/dev/xvda1 quiet\x00\x00$"),
    Case("extract-qemu-args", ("boot", "extract", "{ext}", "--to", "{out}", "--format", "qemu", "--args", "console=ttyS0"),
         stdout=r"^-kernel {out}/boot_kernel\.\w{8} -initrd {out}/boot_ramdisk\.\w{8} -append 'root=/dev/xvda2 quiet initrd=ucode.img,initramfs-lts console=ttyS0'\n$"),
    Case("extract-libvirt-entry", ("boot", "extract", "{legacy}", "--to", "{out}", "--format", "libvirt", "--entry", "Old"),
         stdout=r"^<os>\n  <kernel>{out}/boot_kernel\.\w{8}</kernel>\n  <cmdline>ro root=/dev/xvda1</cmdline>\n</os>\n$"),
    *(Case(f"extract-golden-{fmt}", ("boot", "extract", "{img}", "--to", "{out}", "--format", fmt, "--args", GOLDEN_ARGS),
           golden=f"extract-{fmt}.{ext}") for fmt, ext in GOLDEN_FORMATS.items()),
    Case("extract-not-bootable", ("boot", "extract", "{legacy}", "--to", "{out}", "--entry", "Xen"), status=6,
         stderr=r"'Xen' is not bootable"),
    Case("extract-stable-names", ("boot", "extract", "{legacy}", "--to", "{out}", "--stable-names", "--format", "simple"),
         stdout=r"^kernel {out}/vmlinuz\nramdisk {out}/initrd\.img\nargs ro root=/dev/xvda1 quiet\n\n?$"),
    Case("stable-names-need-to", ("boot", "extract", "{legacy}", "--stable-names"), status=2,
         stderr=r"--stable-names needs --to DIR"),
    Case("extract-to-missing", ("boot", "extract", "{legacy}", "--to", "{tmp}/nope"), status=2,
         stderr=r"--to {tmp}/nope: not an existing directory"),
    Case("extract-image-isolated", ("boot", "extract", "{img}", "--to", "{out}", "--runas", "65534"),
         stdout=r"^extracted \[\d\] "),
    Case("extract-no-isolate", ("boot", "extract", "{img}", "--to", "{out}", "--no-isolate", "--format", "sxp"),
         stdout=r"^linux \(kernel '{out}/boot_kernel\.\w{8}'\)"),
    Case("interactive-without-terminal", ("boot", "extract", "{img}", "--to", "{out}", "--interactive"), status=6,
         stderr=r"no terminal for the interactive menu"),
    # -- failures ------------------------------------------------------------------------------
    Case("no-config", ("boot", "{empty}"), status=5,
         stderr=r"no boot-loader configuration found on the guest's filesystems \(\(hd0\) directory\)"),
    Case("missing-image", ("boot", "{tmp}/missing.img"), status=3, stderr=r"missing\.img"),
    Case("directory-and-image", ("boot", "{legacy}", "{img}"), status=2,
         stderr=r"a directory can only be given alone"),
]


def _write(root: Path, tree: dict[str, str]) -> str:
    for rel, text in tree.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(root)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("bootcmd")
    (tmp / "empty").mkdir()
    (tmp / "list").mkdir()
    _write(tmp / "list", LEGACY)
    (tmp / "out").mkdir()
    return {
        "out": str(tmp / "out"),
        "legacy": _write(tmp / "legacy", LEGACY),
        "ext": _write(tmp / "ext", EXT),
        "multi": _write(tmp / "multi", MULTI),
        "sdboot": _write(tmp / "sdboot", SDBOOT),
        "empty": str(tmp / "empty"),
        "img": str(fixture_path("config/legacy-esp.img.gz")),
        "tmp": str(tmp),
    }


run = run_cli


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_boot_cli(case: Case, places: dict[str, str], capfd: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(places["tmp"])
    argv = [a.format(**places) for a in case.argv]
    for name in os.listdir(places["out"]):
        os.unlink(os.path.join(places["out"], name))
    status, out, err = run(argv, capfd)
    assert status == case.status, err
    if case.stderr is not None:
        assert re.search(case.stderr.replace("{tmp}", re.escape(places["tmp"])), err), err
    if case.status != 0:
        assert "Traceback" not in err and "internal error" not in err
        assert out == ""
        if "usage:" not in err:  # argparse prints its usage line first; ours are one line
            assert err.count("\n") == 1, err
    if case.status == 0 and "{out}" in case.argv:  # the names printed are the files extracted, and only those
        printed = TEMP_NAME.finditer(out) if "--stable-names" not in case.argv else STABLE_NAME.finditer(out)
        assert {m.group(0) for m in printed} == set(os.listdir(places["out"])), out
    if case.golden is not None:
        assert_golden(TEMP_NAME.sub(r"boot_\1.XXXXXXXX", out.replace(places["tmp"], "{tmp}")), f"cli/boot/{case.golden}")
    if case.stdout is not None:
        pattern = case.stdout.replace("{out}", re.escape(places["out"])).replace("{tmp}", re.escape(places["tmp"]))
        assert re.search(pattern, out), out
    if case.status != 0:
        assert os.listdir(places["out"]) == [], "a failed run left files behind"
    if case.json_default is not None:
        doc = json.loads(out)
        assert doc["schema_version"] == 1 and doc["default_path_str"] == case.json_default


def _boot_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["boot"]  # type: ignore[no-any-return]
    raise AssertionError("no boot subcommand")


def test_every_flag_and_action_has_a_case() -> None:
    """virtinst's checkprops idea: adding a flag or an action without a test case fails here."""
    from virtkit.cli.boot_cmd import ACTIONS

    used = {a for c in CASES for a in c.argv}
    flags = {s for act in _boot_parser()._actions for s in act.option_strings if s.startswith("--") and s != "--help"}
    missing = sorted(f for f in flags if f not in used)
    assert not missing, f"flags without a test case: {missing}"
    missing_actions = sorted(a for a in ACTIONS if a not in used)
    assert not missing_actions, f"actions without a test case: {missing_actions}"


def test_every_format_has_a_golden() -> None:
    """Adding a --format without an extraction golden fails here."""
    (fmt_action,) = [a for a in _boot_parser()._actions if "--format" in a.option_strings]
    assert set(fmt_action.choices or ()) == set(GOLDEN_FORMATS)
    goldens = {c.golden for c in CASES}
    for fmt, ext in GOLDEN_FORMATS.items():
        assert f"extract-{fmt}.{ext}" in goldens, fmt


def test_stable_names_replace_atomically_and_drop_a_stale_initrd(places: dict[str, str],
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """--stable-names: the same two paths across runs, each replaced by rename(), no random names left."""
    out = Path(places["tmp"]) / "stable"
    out.mkdir(exist_ok=True)
    argv = ["boot", "extract", places["legacy"], "--to", str(out), "--stable-names", "--format", "json"]
    status, text, err = run(argv, capfd)
    assert status == 0, err
    first = json.loads(text)
    assert first["kernel"] == str(out / "vmlinuz") and first["ramdisk"] == str(out / "initrd.img")
    kernel_inode = (out / "vmlinuz").stat().st_ino
    (out / "vmlinuz.keep").hardlink_to(out / "vmlinuz")  # a reader holding the old file keeps it whole
    status, text, err = run(argv, capfd)
    assert status == 0, err
    assert (out / "vmlinuz").stat().st_ino != kernel_inode  # a new file renamed over the old one
    assert (out / "vmlinuz.keep").read_bytes() == (out / "vmlinuz").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["initrd.img", "vmlinuz", "vmlinuz.keep"]
    # an entry without an initrd: the earlier initrd.img must not stay next to the new kernel
    status, text, err = run([*argv, "--entry", "Old"], capfd)
    assert status == 0, err
    assert json.loads(text)["ramdisk"] is None
    assert sorted(p.name for p in out.iterdir()) == ["vmlinuz", "vmlinuz.keep"]


def test_a_failed_run_leaves_no_temporary_directory(places: dict[str, str], capfd: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --to the run makes its own directory; a failing extraction removes it again."""
    tmp = Path(places["tmp"]) / "tmpdirs"
    tmp.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    status, _out, err = run(["boot", "extract", places["legacy"], "--entry", "Xen"], capfd)
    assert status == 6 and "is not bootable" in err
    assert list(tmp.iterdir()) == []
