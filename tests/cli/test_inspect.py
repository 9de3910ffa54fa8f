"""``virtkit inspect``: one table row per case, golden outputs, every flag covered, the JSON documented.

Cases run in a scratch directory holding the fixtures under short names, so
paths in the output are stable: {mbr} {gpt} {gpt4k} {lvm} {s0} {s1} {whole}
(tests/data/volume), {md0} {md1} and {r5a} {r5b} (RAID1 / RAID5 member pairs
from tests/builders/md.py), {qcow2} (mbr-logical.img converted by qemu-img),
{overlay} (a qcow2 overlay whose backing file is mbr-logical.img), {evil}
(a GPT whose partition name holds escape sequences), {dir} (a directory given
as IMAGE); damaged but readable: {gptbad} (primary GPT header damaged),
{gpttrunc} (a GPT disk cut short); hostile: {ebrloop}, {gpt2e32}, {lvbeyond},
{lvsyntax}.  Goldens live in tests/golden/cli/inspect/; ``pytest --regenerate-golden`` rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from builders.gpt import LINUX_FS, GptDisk, GptPart
from builders.lvm import PV_UUID, LvSpec, PvImage, PvSpec, Seg, vg_text
from builders.mbr import DiskImage, Entry, ebr_sector, mbr_sector
from builders.md import md_member
from helpers import ROOT, assert_golden, fixture_path, run_cli
from virtkit.cli.main import build_parser

SAMPLE = "no IMAGE given: using the bundled sample guest image"
MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    status: int = 0
    golden: str | None = None  # stdout compared with tests/golden/cli/inspect/<golden>
    stdout: str | None = None  # ... or a regex stdout must match
    stderr: str | None = None  # regex stderr must match
    needs: str | None = None  # a tool the case's images need (skip without it)


CASES = [
    # -- trees of real-tool fixtures ----------------------------------------------------------
    Case("sample", ("inspect",), golden="sample.txt", stderr=SAMPLE),
    Case("sample-json", ("inspect", "--json"), golden="sample.json", stderr=SAMPLE),
    Case("mbr-logical", ("inspect", "{mbr}"), golden="mbr-logical.txt"),
    Case("mbr-logical-json", ("inspect", "--json", "{mbr}"), golden="mbr-logical.json"),
    Case("gpt", ("inspect", "{gpt}"), golden="gpt.txt"),
    Case("gpt-4k", ("inspect", "{gpt4k}"), golden="gpt-4k.txt"),
    Case("lvm", ("inspect", "{lvm}"), golden="lvm.txt"),
    Case("lvm-json", ("inspect", "--json", "{lvm}"), golden="lvm.json"),
    Case("lvm-volumes-only", ("inspect", "--volumes-only", "{lvm}"), golden="lvm-volumes-only.txt"),
    Case("lvm-striped", ("inspect", "{s0}", "{s1}"), golden="lvm-striped.txt"),
    Case("lvm-striped-json", ("inspect", "--json", "{s0}", "{s1}"), golden="lvm-striped.json"),
    Case("lvm-striped-missing-pv", ("inspect", "{s0}"), golden="lvm-striped-missing.txt"),
    Case("lvm-wholedisk-json", ("inspect", "--json", "--volumes-only", "{whole}"), golden="lvm-wholedisk.json"),
    Case("md-raid1", ("inspect", "{md0}", "{md1}"), golden="md-raid1.txt"),
    Case("md-raid5-refused", ("inspect", "{r5a}", "{r5b}"), golden="md-raid5.txt"),
    # -- the shared image options --------------------------------------------------------------
    Case(
        "qcow2",
        ("inspect", "{qcow2}"),
        stdout=r"image: qcow2 \(version 3, 64 KiB clusters.*\), virtual size 24 MiB .*disk0p7  \(hd0,msdos7\)",
        needs="qemu-img",
    ),
    Case(
        "format-raw-on-qcow2",
        ("inspect", "--image-format", "raw", "{qcow2}"),
        stdout=r"partition table: none",
        needs="qemu-img",
    ),
    Case(
        "backing",
        ("inspect", "--backing", "{mbr}", "{overlay}"),
        stdout=r"backing file mbr-logical.img.*disk0p7  \(hd0,msdos7\)",
        needs="qemu-img",
    ),
    Case("backing-refused", ("inspect", "{overlay}"), status=3, stderr=r"--backing", needs="qemu-img"),
    Case("sector-size-4096", ("inspect", "--sector-size", "4096", "{gpt4k}"), golden="gpt-4k.txt"),
    Case(
        "sector-size-wrong",
        ("inspect", "--sector-size", "512", "{gpt4k}"),
        status=3,
        stderr=r"virtkit: error: GPT of disk0 at 0x200: the primary header at LBA 1 \(no 'EFI PART' signature",
    ),
    Case(
        "limit",
        ("inspect", "--limit", "max_partitions=4", "{mbr}"),
        status=3,
        stderr=r"extended partition chain of disk0: 5 exceeds the max_partitions limit of 4 \(raise it with --limit max_partitions=N\)",
    ),
    # -- hostile disks: one clear line, exit 3 --------------------------------------------------
    Case(
        "ebr-loop",
        ("inspect", "{ebrloop}"),
        status=3,
        stderr=r"^virtkit: error: extended partition chain of disk0 at 0x7d000: the EBR at LBA 1000 links back to "
        r"LBA 1000, already visited \(a loop\)\n$",
    ),
    Case(
        "gpt-2e32-entries",
        ("inspect", "{gpt2e32}"),
        status=3,
        stderr=r"^virtkit: error: GPT header at LBA 1 of disk0: 4294967295 exceeds the max_partitions limit of 256",
    ),
    Case(
        "lv-beyond-its-pv",
        ("inspect", "{lvbeyond}"),
        status=3,
        stderr=r"^virtkit: error: LV vg/x segment 1 \(disk0, metadata area at 0x1000, line 37\) at 0x2900000: "
        r"extents 10\.\.10 on pv0 end at 0x2d00000, beyond the end of disk0",
    ),
    Case(
        "lvm-metadata-syntax",
        ("inspect", "{lvsyntax}"),
        status=3,
        stderr=r"^virtkit: error: LVM metadata on disk0, metadata area at 0x1000: line 3:9: unexpected character '\$'",
    ),
    Case("missing-image", ("inspect", "{missing}"), status=3, stderr=r"cannot open image .*missing.img"),
    Case(
        "gpt-primary-damaged",
        ("inspect", "--volumes-only", "{gptbad}"),
        stdout=r"  note: primary GPT header at LBA 1 is damaged \(header CRC32 mismatch, expected 0x[0-9a-f]{8}, got "
        r"0x[0-9a-f]{8}\): used the backup at LBA 4095\n  └── disk0p1  \(hd0,gpt1\)",
    ),
    Case(
        "gpt-truncated",
        ("inspect", "--volumes-only", "{gpttrunc}"),
        stdout=r"note: the backup GPT header should be at LBA 4095, past the end of the disk \(3500 sectors\)",
    ),
    Case(
        "directory",
        ("inspect", "{dir}"),
        stdout=r"^dir0 \(hd0\): tree\n  a directory on the host, read as one filesystem root\n$",
    ),
]


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inspect")
    for name in ("mbr-logical", "gpt", "gpt-4k", "lvm", "lvm-striped-0", "lvm-striped-1", "lvm-wholedisk"):
        shutil.copyfile(fixture_path(f"volume/{name}.img.gz"), root / f"{name}.img")
    data = bytes(range(256)) * 4096
    for role in (0, 1):
        _write(
            root / f"md{role}.img",
            bytes(md_member(8 * MiB, version="1.2", name="guest:root", dev_number=role, data=data)),
        )
        _write(
            root / f"r5-{role}.img",
            bytes(md_member(8 * MiB, version="1.0", name="data", dev_number=role, level=5, raid_disks=3)),
        )
    if shutil.which("qemu-img"):
        subprocess.run(
            ["qemu-img", "convert", "-O", "qcow2", "mbr-logical.img", "mbr-logical.qcow2"], cwd=root, check=True
        )
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "mbr-logical.img", "-F", "raw", "overlay.qcow2"],
            cwd=root,
            check=True,
        )
    disk = DiskImage(8192)
    disk.put(0, mbr_sector([Entry(0x05, 1000, 7000)]))
    disk.put(1000, ebr_sector(Entry(0x83, 1, 9), Entry(0x05, 0, 10)))
    _write(root / "ebr-loop.img", disk.bytes())
    g = GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 3000))
    g.primary_header["number_of_partition_entries"] = 2**32 - 1
    _write(root / "gpt-2e32.img", g.build())
    text = vg_text("vg", pvs=[PvSpec("pv0", PV_UUID, pe_count=100)], lvs=[LvSpec("x", [Seg(0, 1, [("pv0", 10)])])])
    _write(root / "lv-beyond.img", bytes(PvImage(size=32 * MiB, pv_uuid=PV_UUID, text=text.encode()).build()))
    bad = 'vg {\nid = "x"\nseqno = $1\n}\n'
    _write(root / "lv-syntax.img", bytes(PvImage(size=8 * MiB, pv_uuid=PV_UUID, text=bad.encode()).build()))
    damaged = GptDisk(sectors=4096, corrupt_primary_header=True).add(GptPart(LINUX_FS, 2048, 3000))
    _write(root / "gpt-bad.img", damaged.build())
    _write(root / "gpt-trunc.img", GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 3000)).build()[: 3500 * 512])
    (root / "tree" / "grub").mkdir(parents=True)
    (root / "tree" / "grub" / "grub.cfg").write_text("set timeout=0\n")
    evil = GptDisk(sectors=4096).add(GptPart(LINUX_FS, 2048, 3000, name="\x1b]0;pwned\x07\x1b[31mred\u202e"))
    _write(root / "evil.img", evil.build())
    return root


PLACES = {
    "mbr": "mbr-logical.img",
    "gpt": "gpt.img",
    "gpt4k": "gpt-4k.img",
    "lvm": "lvm.img",
    "s0": "lvm-striped-0.img",
    "s1": "lvm-striped-1.img",
    "whole": "lvm-wholedisk.img",
    "md0": "md0.img",
    "md1": "md1.img",
    "r5a": "r5-0.img",
    "r5b": "r5-1.img",
    "qcow2": "mbr-logical.qcow2",
    "overlay": "overlay.qcow2",
    "ebrloop": "ebr-loop.img",
    "gpt2e32": "gpt-2e32.img",
    "lvbeyond": "lv-beyond.img",
    "lvsyntax": "lv-syntax.img",
    "evil": "evil.img",
    "missing": "missing.img",
    "dir": "tree",
    "gptbad": "gpt-bad.img",
    "gpttrunc": "gpt-trunc.img",
}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case: Case, scratch: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if case.needs and not shutil.which(case.needs):
        pytest.skip(f"external tool {case.needs!r} is not installed")
    monkeypatch.chdir(scratch)
    status, out, err = run_cli([a.format(**PLACES) for a in case.argv], capfd)
    assert status == case.status, err
    if case.stderr is not None:
        assert re.search(case.stderr, err), err
    if case.status != 0:
        assert "Traceback" not in err and "internal error" not in err
        assert out == ""
    if case.golden is not None:
        assert_golden(out, f"cli/inspect/{case.golden}")
        if case.golden.endswith(".json"):
            check_documented(json.loads(out))
    if case.stdout is not None:
        assert re.search(case.stdout, out, re.DOTALL), out


def test_guest_strings_are_sanitised(
    scratch: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scratch)
    status, out, _ = run_cli(["inspect", "evil.img"], capfd)
    assert status == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert 'name "\\x1b]0;pwned\\x07\\x1b[31mred\\u202e"' in out
    status, out, _ = run_cli(["inspect", "--json", "evil.img"], capfd)
    assert status == 0 and "\x1b" not in out
    assert json.loads(out)["volumes"][1]["part_label"] == "\x1b]0;pwned\x07\x1b[31mred\u202e"


def test_every_flag_has_a_case() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    options = {
        opt
        for action in sub.choices["inspect"]._actions  # type: ignore[union-attr]
        for opt in action.option_strings
        if opt not in ("-h", "--help")
    }
    used = {arg for case in CASES for arg in case.argv}
    assert options <= used, f"flags without a case: {sorted(options - used)}"


# -- the JSON is what docs/inspect-json.md says ----------------------------------------------------------


def documented_fields() -> dict[str, set[str]]:
    """Field names per section of docs/inspect-json.md (the first column of each table)."""
    text = (ROOT / "docs" / "inspect-json.md").read_text()
    out: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = re.match(r"\| (`[^|]+`) \|", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                out.setdefault(section, set()).add(name)
    return out


def check_documented(doc: dict) -> None:
    fields = documented_fields()
    lv_fields = {"name", "uuid", "size", "segment_types", "status", "readable", "reason", "volume"}
    assert set(doc) == fields["Top level"]
    for d in doc["disks"]:
        assert set(d) == fields["Disks"]
    for v in doc["volumes"]:
        assert set(v) == fields["Volumes"]
    for vg in doc["volume_groups"]:
        assert set(vg) == fields["Volume groups"] - lv_fields | {"name", "uuid"}
        for lv in vg["lvs"]:
            assert set(lv) == lv_fields
    for a in doc["md_arrays"]:
        assert set(a) == fields["MD arrays"]


def test_documentation_lists_the_lv_fields() -> None:
    assert {"segment_types", "status", "readable", "reason", "volume"} <= documented_fields()["Volume groups"]


def test_json_matches_the_python_model(
    scratch: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from virtkit.boot.pipeline import open_guest
    from virtkit.limits import Limits

    monkeypatch.chdir(scratch)
    status, out, _ = run_cli(["inspect", "--json", "lvm-striped-0.img", "lvm-striped-1.img"], capfd)
    assert status == 0
    doc = json.loads(out)
    with open_guest(["lvm-striped-0.img", "lvm-striped-1.img"], limits=Limits()) as g:
        assert [v["name"] for v in doc["volumes"]] == [v.name for v in g.storage.volumes]
        assert [v["grub_names"] for v in doc["volumes"]] == [list(v.grub_names) for v in g.storage.volumes]
        assert [m.fs.uuid for m in g.filesystems() if m.fs] == [
            v["filesystem"]["uuid"] for v in doc["volumes"] if v["filesystem"]
        ]


def test_runs_as_a_program(scratch: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        ["python3", "-m", "virtkit.cli.main", "inspect", "--volumes-only", "gpt.img"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "disk0p3  (hd0,gpt3)" in done.stdout
