"""Differential tests: our volume discovery against sfdisk, blkid, lvs, mdadm and GRUB itself.

* partition lists vs ``sfdisk --json``, on every fixture and on random tables
  that sfdisk writes at test time;
* each volume's content vs ``blkid -p`` (TYPE);
* volume groups and LVs vs ``lvs --reportformat json`` (read-only loop devices,
  LVM restricted to them, nothing activated; needs root);
* MD superblocks from tests/builders/md.py vs ``mdadm --examine``;
* GRUB names and bytes vs ``grub-fstest``: GRUB 2.06's own device list and the
  CRC32 of every volume read through GRUB's partition/LVM/RAID code.

Each test skips, saying why, when its tool is missing.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import zlib
from pathlib import Path

import pytest

from builders.md import md_member
from helpers import fixture_path, is_root, require_tool
from virtkit._streams import iter_chunks
from virtkit.boot.pipeline import open_guest
from virtkit.boot.volume.model import VolumeKind
from virtkit.limits import Limits

pytestmark = pytest.mark.differential

FIXTURE_SETS = [
    ("mbr-logical.img",),
    ("gpt.img",),
    ("gpt-4k.img",),
    ("lvm.img",),
    ("lvm-striped-0.img", "lvm-striped-1.img"),
    ("lvm-wholedisk.img",),
]
MiB = 1 << 20


def paths(names: tuple[str, ...]) -> list[str]:
    return [str(fixture_path(f"volume/{n}.gz")) for n in names]


def run(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


# ------------------------------------------------------------------ sfdisk


def sfdisk_partitions(image: str) -> tuple[dict, list[dict]]:
    pt = json.loads(run("sfdisk", "--json", image))["partitiontable"]
    rows = []
    for p in pt["partitions"]:
        number = int(re.search(r"(\d+)$", p["node"]).group(1))
        rows.append({"number": number, **{k: v for k, v in p.items() if k != "node"}})
    return pt, rows


def our_partitions(storage, disk: int, ss: int) -> list[dict]:
    out = []
    for v in storage.volumes:
        if v.kind is not VolumeKind.PARTITION or v.disk != disk:
            continue
        row = {"number": v.number, "start": v.start // ss, "size": v.size // ss}
        if v.scheme == "msdos":
            row["type"] = format(int(v.type_code, 16), "x")
            if v.bootable:
                row["bootable"] = True
        else:
            row["type"] = v.type_code
            row["uuid"] = v.part_uuid
            if v.part_label:
                row["name"] = v.part_label
        out.append(row)
    return out


def sfdisk_comparable(rows: list[dict]) -> list[dict]:
    keep = ("number", "start", "size", "type", "uuid", "name", "bootable")
    return [{k: r[k] for k in keep if k in r} for r in rows]


@pytest.mark.parametrize("names", [s for s in FIXTURE_SETS if s != ("gpt-4k.img",)], ids="+".join)
def test_partitions_match_sfdisk(names):
    require_tool("sfdisk")
    with open_guest(paths(names), limits=Limits()) as g:
        for i, image in enumerate(paths(names)):
            layout = g.storage.disks[i]
            if layout.table is None:
                continue
            pt, rows = sfdisk_partitions(image)
            assert pt["label"] == {"msdos": "dos", "gpt": "gpt"}[layout.table]
            assert pt["id"] == layout.disk_id
            assert our_partitions(g.storage, i, 512) == sfdisk_comparable(rows)


@pytest.mark.root
def test_4k_partitions_match_sfdisk_on_a_4k_loop_device():
    """sfdisk takes the sector size from the device: attach the 4Kn image with 4096-byte sectors."""
    require_tool("sfdisk", "losetup")
    if not is_root():
        pytest.skip("attaching an image to a loop device needs root")
    image = paths(("gpt-4k.img",))[0]
    try:
        loop = run("losetup", "-f", "--show", "-r", "--sector-size", "4096", image).strip()
    except AssertionError as exc:
        pytest.skip(f"cannot attach a loop device here: {exc}")
    try:
        pt, rows = sfdisk_partitions(loop)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    assert pt["sectorsize"] == 4096
    with open_guest([image], limits=Limits()) as g:
        assert pt["id"] == g.storage.disks[0].disk_id
        assert our_partitions(g.storage, 0, 4096) == sfdisk_comparable(rows)


def _attrs(attrs: str | None) -> int:
    bits = {"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}
    value = 0
    for word in (attrs or "").split():
        if word.startswith("GUID:"):
            for b in word[5:].split(","):
                value |= 1 << int(b)
        else:
            value |= 1 << bits[word]
    return value


def test_gpt_attributes_match_sfdisk():
    require_tool("sfdisk")
    image = paths(("gpt.img",))[0]
    _, rows = sfdisk_partitions(image)
    from virtkit._streams import FileSource
    from virtkit.boot.volume.gpt import parse_gpt

    fd = os.open(image, os.O_RDONLY)
    try:
        t = parse_gpt(FileSource(fd, "gpt.img"), sector_size=512, limits=Limits(), where="disk0")
    finally:
        os.close(fd)
    assert [p.attributes for p in t.partitions] == [_attrs(r.get("attrs")) for r in rows]
    assert [p.attributes for p in t.partitions] == [0, 0, 4, 0, 0, 1]


def _random_script(rng: random.Random, label: str, path: str) -> str:
    lines = [f"label: {label}", "unit: sectors", ""]
    if label == "dos":
        lines.insert(1, f"label-id: 0x{rng.getrandbits(32):08x}")
        pos = 2048
        primaries = rng.randint(0, 3)
        for n in range(1, primaries + 1):
            size = rng.randint(1, 64) * 8
            boot = ", bootable" if rng.random() < 0.3 else ""
            lines.append(
                f"{path}{n} : start={pos}, size={size}, type={rng.choice(['83', '82', 'c', '8e', 'fd', '7'])}{boot}"
            )
            pos += size + rng.randint(0, 16) * 8
        if rng.random() < 0.7:
            ext_n = primaries + 1
            logicals = rng.randint(1, 8)
            ext_start = pos
            lines.append(
                f"{path}{ext_n} : start={ext_start}, size={(logicals + 1) * 1024}, type={rng.choice(['5', 'f', '85'])}"
            )
            lpos = ext_start + 8
            for i in range(logicals):
                size = rng.randint(1, 100)
                lines.append(f"{path}{5 + i} : start={lpos}, size={size}, type={rng.choice(['83', '82', '8e'])}")
                lpos += size + 8
    else:
        lines.insert(
            1, f"label-id: {rng.choice(['', '1'])}{rng.getrandbits(28):07X}-1111-4222-8333-{rng.getrandbits(48):012X}"
        )
        pos = 2048
        for n in sorted(rng.sample(range(1, 40), rng.randint(1, 12))):
            size = rng.randint(1, 64) * 8
            t = rng.choice(
                [
                    "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                    "E6D6D379-F507-44C2-A23C-238F2A3DF928",
                    "21686148-6449-6E6F-744E-656564454649",
                ]
            )
            name = rng.choice(["", "root", "boot", "a b", "ünï"])
            attrs = rng.choice(["", ", attrs=LegacyBIOSBootable", ", attrs=RequiredPartition"])
            lines.append(f'{path}{n} : start={pos}, size={size}, type={t}, name="{name}"{attrs}')
            pos += size + rng.randint(0, 4) * 8
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(24))
def test_random_tables_written_by_sfdisk(tmp_path, seed):
    require_tool("sfdisk")
    rng = random.Random(seed)
    label = "dos" if seed % 2 == 0 else "gpt"
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(32 * MiB)
    script = _random_script(rng, label, str(image))
    done = subprocess.run(["sfdisk", "-q", "--no-reread", str(image)], input=script, text=True, capture_output=True)
    assert done.returncode == 0, f"sfdisk refused the generated script:\n{script}\n{done.stderr}"
    pt, rows = sfdisk_partitions(str(image))
    with open_guest([str(image)], limits=Limits()) as g:
        assert g.storage.disks[0].disk_id == pt["id"]
        assert our_partitions(g.storage, 0, 512) == sfdisk_comparable(rows), script


# ------------------------------------------------------------------ blkid


def blkid_type(image: str, offset: int, size: int) -> str | None:
    out = subprocess.run(
        ["blkid", "-p", "-o", "export", "-O", str(offset), "-S", str(size), image], capture_output=True, text=True
    )
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return fields.get("TYPE") or ({"dos": "msdos", "gpt": "gpt"}.get(fields.get("PTTYPE", "")))


@pytest.mark.parametrize("names", FIXTURE_SETS, ids="+".join)
def test_contents_match_blkid(names, tmp_path):
    require_tool("blkid")
    images = paths(names)
    with open_guest(images, limits=Limits()) as g:
        checked = 0
        for v in g.storage.volumes:
            if v.content == "extended":
                continue
            if v.kind is VolumeKind.DISK and g.storage.disks[v.disk].sector_size != 512:
                continue  # blkid reads an image file with 512-byte sectors: it cannot see a 4Kn GPT
            if v.kind is VolumeKind.LOGICAL_VOLUME:
                dump = tmp_path / "lv.img"
                with open(dump, "wb") as f:
                    for chunk in iter_chunks(v.source):
                        f.write(chunk)
                got = blkid_type(str(dump), 0, v.size)
            else:
                got = blkid_type(images[v.disk], v.start, v.size)
            assert got == v.content, v.name
            checked += 1
        assert checked >= 2


# ------------------------------------------------------------------ lvs


LVM_CONF = """devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmlockd = 0 }
"""


def _attach_readonly(image: str, offset: int, size: int) -> str:
    return run("losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), image).strip()


@pytest.mark.root
@pytest.mark.parametrize(
    "names", [("lvm.img",), ("lvm-striped-0.img", "lvm-striped-1.img"), ("lvm-wholedisk.img",)], ids="+".join
)
def test_lvs_match_lvm(names, tmp_path):
    require_tool("lvs", "losetup")
    if not is_root():
        pytest.skip("attaching images to loop devices for lvs needs root")
    (tmp_path / "lvm").mkdir()
    (tmp_path / "lvm" / "lvm.conf").write_text(LVM_CONF)
    env = dict(os.environ, LVM_SYSTEM_DIR=str(tmp_path / "lvm"), LVM_SUPPRESS_FD_WARNINGS="1")
    images = paths(names)
    loops: list[str] = []
    try:
        with open_guest(images, limits=Limits()) as g:
            for v in g.storage.volumes:
                if v.content == "LVM2_member":
                    try:
                        loops.append(_attach_readonly(images[v.disk], v.start, v.size))
                    except AssertionError as exc:
                        pytest.skip(f"cannot attach a loop device here: {exc}")
            report = json.loads(
                run(
                    "lvs",
                    "--devices",
                    ",".join(loops),
                    "--readonly",
                    "--driverloaded",
                    "n",
                    "--reportformat",
                    "json",
                    "--units",
                    "b",
                    "--nosuffix",
                    "-o",
                    "vg_name,vg_uuid,lv_name,lv_uuid,lv_size,segtype,vg_seqno",
                    env=env,
                )
            )["report"][0]["lv"]
            theirs = {  # one row per segment: segtype is a segment field
                (
                    r["vg_name"],
                    r["vg_uuid"],
                    r["lv_name"],
                    r["lv_uuid"],
                    int(r["lv_size"]),
                    r["segtype"],
                    int(r["vg_seqno"]),
                )
                for r in report
            }
            ours = [
                (vg.name, vg.uuid, lv.name, lv.uuid, lv.size, "+".join(lv.segment_types), vg.seqno)
                for vg in g.storage.volume_groups
                for lv in vg.lvs
            ]
            assert sorted(ours) == sorted(theirs)
            assert len(ours) == len(set(ours))
    finally:
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], check=False)


# ------------------------------------------------------------------ mdadm


@pytest.mark.parametrize("version", ["1.2", "1.1", "1.0", "0.90"])
def test_md_superblocks_match_mdadm(version, tmp_path):
    require_tool("mdadm")
    kw = {} if version == "0.90" else {"name": "diffhost:data"}
    members = []
    for role in (0, 1):
        extra = {"raid_disk": role} if version == "0.90" else {"dev_number": role}
        path = tmp_path / f"m{role}.img"
        path.write_bytes(md_member(8 * MiB, version=version, events=1234, **kw, **extra))
        members.append(str(path))
    exported = dict(line.split("=", 1) for line in run("mdadm", "--examine", "--export", members[0]).splitlines())
    verbose = run("mdadm", "--examine", members[0])
    with open_guest(members, limits=Limits()) as g:
        (info,) = g.storage.md_arrays
        arr = g.storage.volumes[-1]
    assert exported["MD_LEVEL"] == info.level
    assert exported["MD_UUID"] == info.uuid
    assert int(exported["MD_DEVICES"]) == info.raid_disks
    assert int(exported["MD_EVENTS"]) == 1234
    if version != "0.90":
        assert exported["MD_NAME"] == "diffhost:data" and info.name == "md/data"
        assert f"Version : {version}" in verbose
        offset = re.search(r"Data Offset : (\d+) sectors", verbose)
        assert (int(offset.group(1)) if offset else 0) * 512 == arr.source.start
    assert re.search(r"Checksum : \w+ - correct", verbose)


# ------------------------------------------------------------------ GRUB


def grub_devices(images: list[str]) -> set[str]:
    out = run("grub-fstest", "-c", str(len(images)), *images, "ls")
    return set(re.findall(r"\(([^)]+)\)", out)) - {"proc", "host"}


def grub_crc(images: list[str], device: str, size: int) -> str:
    return run("grub-fstest", "-c", str(len(images)), *images, "crc", f"({device})0+{size // 512}").strip()


def to_grub(name: str) -> str:
    """Our hdN names as grub-fstest sees the images: loopN."""
    return re.sub(r"^hd(\d+)", r"loop\1", name)


REFUSED_BUT_READ_BY_GRUB = {("lvm.img",): {"lvm/vg--sys-mirror--r1"}}


@pytest.mark.parametrize("names", FIXTURE_SETS, ids="+".join)
def test_grub_sees_the_same_devices_and_bytes(names):
    require_tool("grub-fstest")
    images = paths(names)
    with open_guest(images, limits=Limits()) as g:
        ours = {to_grub(v.grub_names[0]) for v in g.storage.volumes if v.grub_names}
        assert grub_devices(images) - ours == REFUSED_BUT_READ_BY_GRUB.get(names, set())
        assert ours <= grub_devices(images)
        for v in g.storage.volumes:
            if not v.grub_names or v.content in ("msdos", "gpt", "LVM2_member") or v.size > 64 * MiB:
                continue
            mine = 0
            for chunk in iter_chunks(v.source):
                mine = zlib.crc32(chunk, mine)
            for name in v.grub_names:
                assert grub_crc(images, to_grub(name), v.size) == f"{mine:08x}", (v.name, name)


@pytest.mark.parametrize("version", ["1.2", "1.1", "1.0", "0.90"])
def test_grub_names_md_arrays_like_us(version, tmp_path):
    require_tool("grub-fstest")
    data = random.Random(version).randbytes(MiB)
    members = []
    for role in (0, 1):
        extra = {"raid_disk": role} if version == "0.90" else {"dev_number": role, "name": "myhost:root"}
        path = Path(tmp_path / f"m{role}.img")
        path.write_bytes(md_member(8 * MiB, version=version, data=data, **extra))
        members.append(str(path))
    with open_guest(members, limits=Limits()) as g:
        arr = g.storage.volumes[-1]
        assert arr.kind is VolumeKind.RAID
        mine = f"{zlib.crc32(arr.source.pread(0, MiB)):08x}"
    assert grub_devices(members) == {"loop0", "loop1", arr.grub_names[0]}
    for name in arr.grub_names:
        assert grub_crc(members, name, MiB) == mine, name
