#!/bin/bash
# Build the volume fixtures in tests/data/volume/ with real tools.
#
#   mbr-logical.img   sfdisk MBR: 2 primaries, an extended partition with 3 logicals
#   gpt.img           sgdisk GPT: names (one non-ASCII), attributes, an unused slot
#   gpt-4k.img        sfdisk on a 4096-byte-sector loop device: a 4Kn GPT disk
#   lvm.img           MBR + PV: VG "vg-sys" (linear, two-segment, swap LVs and, via
#                     vgcfgrestore, raid1 / snapshot / thin LVs that must be refused)
#   lvm-striped-0.img, lvm-striped-1.img
#                     two GPT disks, one PV each: VG "data" with a striped LV and an
#                     LV whose two segments live on different disks
#   lvm-wholedisk.img a PV on the whole disk (no table), a 60 KiB metadata area that
#                     LVM has cycled through (the current copy sits back at the start)
#   SHA256SUMS        the expected contents of every volume that holds a filesystem,
#                     hashed from the files that were written into it
#   mbr-tiny.bin, gpt-tiny.bin
#                     small raw tables (fuzzing seeds); vg-sys.lvmtext: a metadata copy
#
# Every filesystem holds /volume-id naming where it lives, and /grub/grub.cfg.
# UUIDs, labels, serials and times are pinned (VG and LV UUIDs by
# tests/tools/lvm_pin_ids.py and vgcfgrestore).  MD RAID fixtures are not here:
# this machine's kernel has no md driver, so mdadm cannot create arrays; the
# tests build members with tests/builders/md.py and check them with
# `mdadm --examine` and GRUB instead.
#
# LVM needs root and loop devices but no device-mapper: commands run with
# --driverloaded n (LVs are created inactive, -Zn), a private LVM_SYSTEM_DIR
# (no archives or backups in /etc/lvm), and --devices naming only our loops.
# LV contents are written by tests/tools/lvm_write_lv.py from LVM's own
# segment report.
#
# Usage: sudo tests/tools/make_volume_fixtures.sh [OUTDIR]    (default: tests/data/volume)
# Tools: util-linux 2.38 (sfdisk, losetup --sector-size), gdisk 1.0.9, e2fsprogs 1.47, dosfstools 4.2,
#        mtools, lvm2 2.03.16, python3, gzip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../data/volume}
mkdir -p "$out"
work=$(mktemp -d)
loops=()
cleanup() {
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

export E2FSPROGS_FAKE_TIME=1700000000 SOURCE_DATE_EPOCH=1700000000 TZ=UTC
export LVM_SUPPRESS_FD_WARNINGS=1 LVM_SYSTEM_DIR="$work/lvm"
mkdir -p "$work/lvm"
cat > "$work/lvm/lvm.conf" <<'CONF'
devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmlockd = 0 }
CONF

tree() { # DIR MARKER
    mkdir -p "$1/grub"
    printf '%s\n' "$2" > "$1/volume-id"
    printf 'set timeout=0\nmenuentry "fixture %s" { linux /vmlinuz }\n' "$2" > "$1/grub/grub.cfg"
    touch -d @1700000000 "$1/volume-id" "$1/grub/grub.cfg" "$1/grub" "$1"
}
mkext() { # TYPE FILE KiB LABEL UUID MARKER [BLOCKSIZE]
    tree "$work/t-$4" "$6"
    truncate -s "${3}k" "$2"
    "mkfs.$1" -q -F -L "$4" -U "$5" -E "hash_seed=$5" ${7:+-b "$7"} -d "$work/t-$4" "$2" >/dev/null
}
mkfat() { # FILE KiB LABEL VOLID MARKER [LOGICAL_SECTOR_SIZE]
    tree "$work/t-$3" "$5"
    truncate -s "${2}k" "$1"
    mkfs.vfat --invariant -n "$3" -i "$4" ${6:+-S "$6"} "$1" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$1" "$work/t-$3/volume-id" "$work/t-$3/grub" ::/
}
mkswp() { # FILE KiB LABEL UUID
    truncate -s "${2}k" "$1"
    mkswap -q -L "$3" -U "$4" "$1" >/dev/null
}
place() { # SRC IMAGE LBA [SECTOR_SIZE]
    dd if="$1" of="$2" bs="${4:-512}" seek="$3" conv=notrunc status=none
}
part_field() { # IMAGE N FIELD -> start/size of partition N in sectors (sfdisk's own JSON)
    sfdisk --json "$1" | python3 -c 'import json,sys; n=sys.argv[1]
for p in json.load(sys.stdin)["partitiontable"]["partitions"]:
    if p["node"].endswith(n) and not p["node"][-len(n)-1].isdigit(): print(p[sys.argv[2]])' "$2" "$3"
}
part_start() { part_field "$1" "$2" start; }
part_size() { part_field "$1" "$2" size; }
quiet() { # run an LVM command; show its chatter (device-mapper warnings ...) only if it fails
    "$@" >"$work/cmd.log" 2>&1 || { cat "$work/cmd.log" >&2; return 1; }
}
record() { # VOLUME FILE: the expected bytes of a volume, for tests/data/volume/SHA256SUMS
    printf '%s  %s\n' "$(sha256sum < "$2" | cut -d' ' -f1)" "$1" >> "$work/SHA256SUMS"
}
finish() { # IMAGE NAME
    gzip -9 -n -c "$1" > "$out/$2.gz"
}

# ---------------------------------------------------------------- mbr-logical.img
img=$work/mbr-logical.img
truncate -s 24M "$img"
sfdisk -q "$img" <<EOF
label: dos
label-id: 0x5eed1234
unit: sectors

${img}1 : size=4MiB, type=83, bootable
${img}2 : size=2MiB, type=c
${img}3 : size=15MiB, type=5
${img}5 : size=4MiB, type=83
${img}6 : size=2MiB, type=82
${img}7 : size=4MiB, type=83
EOF
mkext ext4 "$work/p1" 4096 mbr-boot 2b9a5c8e-1d2f-4a6b-9c0d-1e2f3a4b5c61 "mbr-logical p1"
mkfat "$work/p2" 2048 MBR-ESP 5eed0002 "mbr-logical p2"
mkext ext3 "$work/p5" 4096 mbr-ext3 2b9a5c8e-1d2f-4a6b-9c0d-1e2f3a4b5c65 "mbr-logical p5"
mkswp "$work/p6" 2048 mbr-swap 2b9a5c8e-1d2f-4a6b-9c0d-1e2f3a4b5c66
mkext ext2 "$work/p7" 4096 mbr-ext2 2b9a5c8e-1d2f-4a6b-9c0d-1e2f3a4b5c67 "mbr-logical p7"
for n in 1 2 5 6 7; do place "$work/p$n" "$img" "$(part_start "$img" "$n")"; record "mbr-logical.img:disk0p$n" "$work/p$n"; done
finish "$img" mbr-logical.img

# ---------------------------------------------------------------- gpt.img
img=$work/gpt.img
truncate -s 24M "$img"
sgdisk -o -U 7A3B9C1D-2E4F-4A5B-8C6D-7E8F9A0B1C2D \
    -n 1:2048:+1M -t 1:EF02 -c 1:bios -u 1:A1A1A1A1-0001-4000-8000-000000000001 \
    -n 2:0:+4M -t 2:EF00 -c 2:"EFI System Partition" -u 2:A1A1A1A1-0002-4000-8000-000000000002 \
    -n 3:0:+6M -t 3:8300 -c 3:"boot ✓ ünïcødé" -u 3:A1A1A1A1-0003-4000-8000-000000000003 -A 3:set:2 \
    -n 5:0:+2M -t 5:8200 -c 5:swap -u 5:A1A1A1A1-0005-4000-8000-000000000005 \
    -n 6:0:+4M -t 6:8E00 -c 6:"empty lvm" -u 6:A1A1A1A1-0006-4000-8000-000000000006 \
    -n 7:0:0 -t 7:FD00 -c 7:raid -u 7:A1A1A1A1-0007-4000-8000-000000000007 -A 7:set:0 \
    "$img" >/dev/null
mkfat "$work/g2" 4096 GPT-ESP 5eed0102 "gpt p2"
mkext ext4 "$work/g3" 6144 gpt-boot 3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e63 "gpt p3"
mkswp "$work/g5" 2048 gpt-swap 3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e65
for n in 2 3 5; do place "$work/g$n" "$img" "$(part_start "$img" "$n")"; record "gpt.img:disk0p$n" "$work/g$n"; done
finish "$img" gpt.img

# ---------------------------------------------------------------- gpt-4k.img
img=$work/gpt-4k.img
truncate -s 16M "$img"
dev=$(losetup -f --show --sector-size 4096 "$img"); loops+=("$dev")  # sfdisk takes the sector size from the device
sfdisk -q "$dev" <<'EOF'
label: gpt
label-id: 4B4B4B4B-4096-4000-8000-000000004096
unit: sectors
first-lba: 256

start=256, size=1024, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=4B4B4B4B-0001-4000-8000-000000000001, name="esp-4k"
size=1536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=4B4B4B4B-0002-4000-8000-000000000002, name="root-4k"
EOF
k1=$(part_start "$dev" 1)
k2=$(part_start "$dev" 2)
losetup -d "$dev"; loops=()
mkfat "$work/k1" 4096 ESP-4K 5eed4096 "gpt-4k p1" 4096
mkext ext4 "$work/k2" 6144 root-4k 4b4b4b4b-4096-4c4c-8d8d-000000000002 "gpt-4k p2" 4096
place "$work/k1" "$img" "$k1" 4096
place "$work/k2" "$img" "$k2" 4096
record gpt-4k.img:disk0p1 "$work/k1"
record gpt-4k.img:disk0p2 "$work/k2"
finish "$img" gpt-4k.img

# ---------------------------------------------------------------- lvm.img
img=$work/lvm.img
truncate -s 96M "$img"
sfdisk -q "$img" <<'EOF'
label: dos
label-id: 0x1f0e0d0c
unit: sectors

size=8MiB, type=83, bootable
type=8e
EOF
mkext ext4 "$work/l1" 8192 lvm-boot 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c81 "lvm p1"
place "$work/l1" "$img" "$(part_start "$img" 1)"
record lvm.img:disk0p1 "$work/l1"
p2=$(part_start "$img" 2)
p2size=$(part_size "$img" 2)
pv=$(losetup -f --show -o $((p2 * 512)) --sizelimit $((p2size * 512)) "$img")
loops+=("$pv")
L=(--devices "$pv" --driverloaded n)
quiet pvcreate -q "${L[@]}" -u pVsys0-AAAA-BBBB-CCCC-DDDD-EEEE-FFFFFF --norestorefile "$pv"
quiet vgcreate -q "${L[@]}" -s 4m vg-sys "$pv"
quiet lvcreate -q "${L[@]}" -an -Zn -L 12m -n root vg-sys
quiet lvcreate -q "${L[@]}" -an -Zn -L 4m -n my-swap vg-sys
quiet lvcreate -q "${L[@]}" -an -Zn -L 4m -n multi-seg vg-sys
quiet lvcreate -q "${L[@]}" -an -Zn -L 4m -n gap vg-sys
quiet lvextend -q "${L[@]}" -L 8m vg-sys/multi-seg
quiet lvremove -q -f "${L[@]}" vg-sys/gap
quiet vgcfgbackup -q "${L[@]}" -f "$work/vg-sys.txt" vg-sys
python3 "$here/lvm_add_refused_lvs.py" "$work/vg-sys.txt" "$work/vg-sys-refused.txt" 7 root
python3 "$here/lvm_pin_ids.py" "$work/vg-sys-refused.txt" "$work/vg-sys-pinned.txt"
quiet vgcfgrestore -q "${L[@]}" --force -f "$work/vg-sys-pinned.txt" vg-sys
mkext ext4 "$work/lv-root" 12288 lv-root 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c90 "vg-sys/root"
mkswp "$work/lv-swap" 4096 lv-swap 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c91
mkext ext2 "$work/lv-multi" 8192 lv-multi 5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c92 "vg-sys/multi-seg"
map="$pv=$img@$((p2 * 512))"
python3 "$here/lvm_write_lv.py" --devices "$pv" --map "$map" vg-sys/root "$work/lv-root"
python3 "$here/lvm_write_lv.py" --devices "$pv" --map "$map" vg-sys/my-swap "$work/lv-swap"
python3 "$here/lvm_write_lv.py" --devices "$pv" --map "$map" vg-sys/multi-seg "$work/lv-multi"
record lvm.img:vg-sys/root "$work/lv-root"
record lvm.img:vg-sys/my-swap "$work/lv-swap"
record lvm.img:vg-sys/multi-seg "$work/lv-multi"
python3 - "$img" $((p2 * 512)) "$out/vg-sys.lvmtext" <<'PY'
import struct, sys  # the current metadata copy, as LVM wrote it on the PV
f = open(sys.argv[1], "rb"); base = int(sys.argv[2])
f.seek(base + 512); label = f.read(512)
mda = struct.unpack_from("<Q", label, 32 + 40 + 32)[0]
f.seek(base + mda); hdr = f.read(512)
off, size = struct.unpack_from("<QQ", hdr, 40)
f.seek(base + mda + off); open(sys.argv[3], "wb").write(f.read(size).rstrip(b"\0"))
PY
for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
loops=()
finish "$img" lvm.img

# ---------------------------------------------------------------- lvm-striped-{0,1}.img
for i in 0 1; do
    truncate -s 32M "$work/s$i.img"
    sgdisk -o -U 5D5D5D5D-000$i-4000-8000-00000000000$i -n 1:2048:0 -t 1:8E00 -c 1:"pv$i" \
        -u 1:5D5D5D5D-100$i-4000-8000-00000000000$i "$work/s$i.img" >/dev/null
done
o=$(( $(part_start "$work/s0.img" 1) * 512 ))
n=$(( $(part_size "$work/s0.img" 1) * 512 ))
d0=$(losetup -f --show -o "$o" --sizelimit "$n" "$work/s0.img"); loops+=("$d0")
d1=$(losetup -f --show -o "$o" --sizelimit "$n" "$work/s1.img"); loops+=("$d1")
L=(--devices "$d0,$d1" --driverloaded n)
quiet pvcreate -q "${L[@]}" -u pVdata-0000-AAAA-BBBB-CCCC-DDDD-000000 --norestorefile "$d0"
quiet pvcreate -q "${L[@]}" -u pVdata-1111-AAAA-BBBB-CCCC-DDDD-111111 --norestorefile "$d1"
quiet vgcreate -q "${L[@]}" -s 1m data "$d0" "$d1"
quiet lvcreate -q "${L[@]}" -an -Zn -i 2 -I 64k -L 16m -n stripes data
quiet lvcreate -q "${L[@]}" -an -Zn -L 10m -n span data "$d0"
quiet lvextend -q "${L[@]}" -L 20m data/span "$d1"
quiet vgcfgbackup -q "${L[@]}" -f "$work/data.txt" data
python3 "$here/lvm_pin_ids.py" "$work/data.txt" "$work/data-pinned.txt"
quiet vgcfgrestore -q "${L[@]}" -f "$work/data-pinned.txt" data
mkext ext4 "$work/lv-stripes" 16384 stripes 6e7f8091-a2b3-4c4d-8e5f-60718293a4b1 "data/stripes"
mkext ext4 "$work/lv-span" 20480 span 6e7f8091-a2b3-4c4d-8e5f-60718293a4b2 "data/span"
map="$d0=$work/s0.img@$o,$d1=$work/s1.img@$o"
python3 "$here/lvm_write_lv.py" --devices "$d0,$d1" --map "$map" data/stripes "$work/lv-stripes"
python3 "$here/lvm_write_lv.py" --devices "$d0,$d1" --map "$map" data/span "$work/lv-span"
record lvm-striped:data/stripes "$work/lv-stripes"
record lvm-striped:data/span "$work/lv-span"
for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
loops=()
finish "$work/s0.img" lvm-striped-0.img
finish "$work/s1.img" lvm-striped-1.img

# ---------------------------------------------------------------- lvm-wholedisk.img
img=$work/w.img
truncate -s 16M "$img"
dev=$(losetup -f --show "$img"); loops+=("$dev")
L=(--devices "$dev" --driverloaded n)
quiet pvcreate -q "${L[@]}" -u pVwhol-eDis-kAAA-BBBB-CCCC-DDDD-EEEEEE --norestorefile \
    --metadatasize 32k --dataalignment 32k "$dev"
quiet vgcreate -q "${L[@]}" -s 1m wrap-vg "$dev"
quiet lvcreate -q "${L[@]}" -an -Zn -L 8m -n lv-one wrap-vg
# Each change writes a new copy after the last; after ~40 the area is cycled and the
# current copy is back near the start of the ring.
for i in $(seq 1 45); do quiet lvchange -q "${L[@]}" --addtag "t$i" wrap-vg/lv-one; done
quiet vgcfgbackup -q "${L[@]}" -f "$work/wrap.txt" wrap-vg
python3 "$here/lvm_pin_ids.py" "$work/wrap.txt" "$work/wrap-pinned.txt"
quiet vgcfgrestore -q "${L[@]}" -f "$work/wrap-pinned.txt" wrap-vg
mkext ext4 "$work/lv-one" 8192 lv-one 7f8091a2-b3c4-4d5e-8f60-718293a4b5c1 "wrap-vg/lv-one"
python3 "$here/lvm_write_lv.py" --devices "$dev" --map "$dev=$img" wrap-vg/lv-one "$work/lv-one"
record lvm-wholedisk.img:wrap-vg/lv-one "$work/lv-one"
for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
loops=()
finish "$img" lvm-wholedisk.img

# ---------------------------------------------------------------- tiny raw tables (fuzz seeds)
t=$work/mbr-tiny.bin
truncate -s 64K "$t"
sfdisk -q "$t" <<EOF
label: dos
label-id: 0x0000beef
unit: sectors

${t}1 : start=4, size=8, type=83
${t}2 : start=16, size=100, type=5
${t}5 : start=18, size=10, type=83
${t}6 : start=30, size=10, type=82
${t}7 : start=42, size=20, type=8e
EOF
cp "$t" "$out/mbr-tiny.bin"
t=$work/gpt-tiny.bin
truncate -s 80K "$t"
sgdisk -o -a 1 -U 00000000-0000-4000-8000-00000000beef -n 1:34:+8 -t 1:8300 -c 1:tiny \
    -u 1:00000000-0000-4000-8000-0000000000b1 -n 3:0:+8 -t 3:EF00 -u 3:00000000-0000-4000-8000-0000000000b3 \
    "$t" >/dev/null
cp "$t" "$out/gpt-tiny.bin"
cp "$work/SHA256SUMS" "$out/SHA256SUMS"
ls -l "$out"
