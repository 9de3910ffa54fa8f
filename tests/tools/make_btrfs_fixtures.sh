#!/usr/bin/env bash
# Build the btrfs test fixtures in tests/data/btrfs/ (gzipped raw images).
#
#   tests/tools/make_btrfs_fixtures.sh            images mkfs.btrfs --rootdir can make (no root)
#   tests/tools/make_btrfs_fixtures.sh --mounted  also the loop-mounted ones (root; made ONCE, committed)
#
# Every image holds the shared /boot tree of tests/tools/boot_tree.py (at its root or in a
# subvolume).  btrfs-progs 6.2 (Debian 12) has no `mkfs.btrfs --rootdir --compress` (added in
# 6.11) and --rootdir is single-device only, so compressed, subvolume, feature and
# multi-device images are made on loop mounts with the commands below and committed.
# UUIDs are fixed so tests can assert them.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=tests/data/btrfs
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/btrfs-fixtures.XXXXXX)
MNT="$WORK/mnt"
LOOPS=()
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$MNT" "$WORK/tree" "$WORK/bigtree"
python3 tests/tools/boot_tree.py "$WORK/tree"
python3 tests/tools/boot_tree.py "$WORK/bigtree" --big-dir 1200

finish() {  # finish NAME: gzip $WORK/NAME.img into tests/data/btrfs/NAME.img.gz
    gzip -9 -n -c "$WORK/$1.img" >"$OUT/$1.img.gz"
    echo "$OUT/$1.img.gz: $(stat -c %s "$OUT/$1.img.gz") bytes gzipped"
}
blank() {  # blank NAME SIZE
    rm -f "$WORK/$1.img"
    truncate -s "$2" "$WORK/$1.img"
}

# --- mkfs.btrfs --rootdir: no root needed ------------------------------------------------
# Default profiles (DUP metadata, single data); 117 MiB, so the superblock mirror at 64 MiB exists.
blank rootdir 80M
mkfs.btrfs -q -f -L vk-btrfs -U 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000001 --rootdir "$WORK/tree" "$WORK/rootdir.img"
finish rootdir

# The other checksum algorithms (single metadata, shrunk to fit: small images).
n=0
for csum in xxhash sha256 blake2; do
    n=$((n + 1))
    blank "csum-$csum" 20M
    mkfs.btrfs -q -f -m single --shrink --csum "$csum" -L "csum-$csum" \
        -U "0d1c0ffe-b7f5-4c1e-9a3b-5e1f0000001$n" --rootdir "$WORK/tree" "$WORK/csum-$csum.img"
    finish "csum-$csum"
done

# 4 KiB nodes and a 1200-entry directory: the fs tree has 3 levels (internal nodes).
blank bigdir-4k 20M
mkfs.btrfs -q -f -m single --shrink -n 4096 -L bigdir-4k -U 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000004 \
    --rootdir "$WORK/bigtree" "$WORK/bigdir-4k.img"
finish bigdir-4k

[ "${1:-}" = "--mounted" ] || exit 0

# --- loop mounts (root): made once and committed -----------------------------------------
[ "$(id -u)" = 0 ] || { echo "--mounted needs root (loop devices)" >&2; exit 1; }

attach() {  # attach IMG: sets LOOP (no command substitution: LOOPS must survive for cleanup)
    LOOP=$(losetup -f --show "$1")
    LOOPS+=("$LOOP")
}
detach_all() {
    for l in "${LOOPS[@]}"; do losetup -d "$l"; done
    LOOPS=()
}
copy_tree() {  # copy_tree DEST: the boot tree with holes, symlinks and times kept
    mkdir -p "$1"
    cp -a --sparse=always "$WORK/tree/." "$1/"
}
# Deterministic file content like boot_tree.py's: each 4 KiB block one sha256 digest repeated.
pattern() {  # pattern NAME BYTES
    python3 -c 'import hashlib,sys
n,size=sys.argv[1],int(sys.argv[2]); out=bytearray(); i=0
while len(out)<size: out+=hashlib.sha256(f"{n}:{i}".encode()).digest()*128; i+=1
sys.stdout.buffer.write(bytes(out[:size]))' "$1" "$2"
}
add_extents_files() {  # files whose extents are split by overwrites (offset != 0 inside an extent)
    pattern overwrite 524288 >"$1/overwrite.bin"
    sync
    pattern patch 8192 | dd of="$1/overwrite.bin" bs=4096 seek=45 conv=notrunc status=none
    sync
}

# Compressed: compress-force so even small files get compressed extents; lzo/zstd set their
# incompat bits on first use.  zstd uses mixed block groups (-M) to cover that layout too.
n=0
for algo in zlib lzo zstd; do
    n=$((n + 1))
    blank "compress-$algo" 48M
    mixed=""; [ "$algo" = zstd ] && mixed="-M"
    mkfs.btrfs -q -f $mixed -m single -d single -L "compress-$algo" \
        -U "0d1c0ffe-b7f5-4c1e-9a3b-5e1f0000002$n" "$WORK/compress-$algo.img"
    mount -o loop,compress-force="$algo" "$WORK/compress-$algo.img" "$MNT"
    copy_tree "$MNT"
    add_extents_files "$MNT"
    umount "$MNT"
    finish "compress-$algo"
done

# openSUSE-like: @, @/.snapshots, snapper's @/.snapshots/1/snapshot as the default subvolume
# holding /boot, @/boot/grub2/i386-pc as its own subvolume, and a read-only snapshot 2 of 1.
blank layout-opensuse 64M
mkfs.btrfs -q -f -m single -d single -L opensuse -U 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000031 "$WORK/layout-opensuse.img"
mount -o loop "$WORK/layout-opensuse.img" "$MNT"
btrfs -q subvolume create "$MNT/@"
btrfs -q subvolume create "$MNT/@/.snapshots"
mkdir -p "$MNT/@/.snapshots/1" "$MNT/@/boot/grub2"
btrfs -q subvolume create "$MNT/@/.snapshots/1/snapshot"
copy_tree "$MNT/@/.snapshots/1/snapshot/boot"
printf '<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n  <num>1</num>\n  <description>first root filesystem</description>\n</snapshot>\n' \
    >"$MNT/@/.snapshots/1/info.xml"
btrfs -q subvolume create "$MNT/@/boot/grub2/i386-pc"
printf 'i386-pc module directory (own subvolume)\n' >"$MNT/@/boot/grub2/i386-pc/README"
btrfs -q subvolume create "$MNT/@/home"
mkdir -p "$MNT/@/.snapshots/2"
btrfs -q subvolume snapshot -r "$MNT/@/.snapshots/1/snapshot" "$MNT/@/.snapshots/2/snapshot"
printf 'written after snapshot 2 was taken\n' >"$MNT/@/.snapshots/1/snapshot/boot/only-in-1.txt"
btrfs -q subvolume set-default "$MNT/@/.snapshots/1/snapshot"
umount "$MNT"
finish layout-opensuse

# Fedora-like: top-level subvolumes root and home; /boot inside root; default stays 5.
blank layout-fedora 64M
mkfs.btrfs -q -f -m single -d single -L fedora_localhost-live -U 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000032 "$WORK/layout-fedora.img"
mount -o loop "$WORK/layout-fedora.img" "$MNT"
btrfs -q subvolume create "$MNT/root"
btrfs -q subvolume create "$MNT/home"
copy_tree "$MNT/root/boot"
mkdir -p "$MNT/home/user"
printf 'hello from /home\n' >"$MNT/home/user/notes.txt"
umount "$MNT"
finish layout-fedora

# Features: DUP metadata, no NO_HOLES (explicit hole extents), prealloc extents,
# split extents, a DIR_ITEM holding two names with the same crc32c hash, an xattr, and a
# snapshot of a subvolume holding a nested subvolume (the snapshot shows an empty placeholder).
blank features 110M
mkfs.btrfs -q -f -m dup -d single -O ^no-holes -L features -U 0d1c0ffe-b7f5-4c1e-9a3b-5e1f00000041 "$WORK/features.img"
mount -o loop "$WORK/features.img" "$MNT"
copy_tree "$MNT"
add_extents_files "$MNT"
fallocate -l 1048576 "$MNT/prealloc.bin"
pattern prealloc 4096 | dd of="$MNT/prealloc.bin" bs=4096 seek=64 conv=notrunc status=none
truncate -s 3145728 "$MNT/prealloc.bin"
mkdir "$MNT/collisions"
# name_hash (crc32c seeded ~1) of these two names is 0x4484de16 (found by a birthday search)
printf 'first\n' >"$MNT/collisions/collide-1371838"
printf 'second\n' >"$MNT/collisions/collide-2000402"
if command -v setfattr >/dev/null; then setfattr -n user.virtkit -v fixture "$MNT/grub/grub.cfg"; fi
btrfs -q subvolume create "$MNT/sub"
btrfs -q subvolume create "$MNT/sub/nested"
printf 'inside nested\n' >"$MNT/sub/nested/file"
printf 'inside sub\n' >"$MNT/sub/file"
btrfs -q subvolume snapshot "$MNT/sub" "$MNT/sub-snap"
umount "$MNT"
finish features

# Two-device RAID1 and RAID0 (each device 125 MiB, the multi-device minimum).  The kernel
# remembers scanned devices: forget stale ones so a rebuild with the same UUID works.
btrfs device scan --forget 2>/dev/null || true
for profile in raid1 raid0; do
    blank "$profile-dev1" 125M
    blank "$profile-dev2" 125M
    n=1; [ "$profile" = raid0 ] && n=2
    attach "$WORK/$profile-dev1.img"; l1=$LOOP
    attach "$WORK/$profile-dev2.img"; l2=$LOOP
    mkfs.btrfs -q -f -m "$profile" -d "$profile" -L "vk-$profile" -U "0d1c0ffe-b7f5-4c1e-9a3b-5e1f0000005$n" "$l1" "$l2"
    mount -o device="$l2" "$l1" "$MNT"
    copy_tree "$MNT"
    umount "$MNT"
    detach_all
    btrfs device scan --forget 2>/dev/null || true
    finish "$profile-dev1"
    finish "$profile-dev2"
done
