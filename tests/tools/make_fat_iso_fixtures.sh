#!/usr/bin/env bash
# Build the FAT and iso9660 fixtures of tests/data/fat/ and tests/data/iso9660/.
#
# Real tools only, no mounting: mkfs.vfat + mcopy/mmd/mdel (dosfstools, mtools),
# xorriso -as mkisofs and genisoimage.  Every image holds the shared /boot tree
# of tests/tools/boot_tree.py; FAT images hold it without symlinks (FAT has none,
# and mcopy would dereference them - an escaping link would even copy a file of
# the *host* into the image), plus a /names directory of long, mixed-case and
# non-ASCII names.  Times are pinned (SOURCE_DATE_EPOCH, touch), serials fixed.
#
# Usage: tests/tools/make_fat_iso_fixtures.sh [OUTDIR]   (default: tests/data)
# Needs: dosfstools, mtools, xorriso, genisoimage, python3, gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../data"}
mkdir -p "$out/fat" "$out/iso9660"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000 TZ=UTC LC_ALL=C.UTF-8
export MTOOLS_SKIP_CHECK=1 MTOOLS_NO_VFAT=0

python3 "$here/boot_tree.py" "$work/tree"

# --- FAT staging tree: the boot tree minus symlinks, plus /names --------------
cp -a "$work/tree" "$work/fat"
find "$work/fat" -type l -delete
mkdir -p "$work/fat/names"
(
    cd "$work/fat/names"
    printf 'mixed\n' > MixedCase.Txt            # needs a long name (mixed case)
    printf 'lower\n' > lower.txt                # 8.3 with NT lower-case flags (base+ext)
    printf 'lowerb\n' > lowerb.TXT              # 8.3 with NT lower-case base only
    printf 'upper\n' > UPPER.TXT                # plain 8.3
    printf 'long\n' > a-name-that-is-longer-than-twenty-six-characters-to-need-several-lfn-slots.cfg
    printf 'greek\n' > 'Ελληνικά.txt'           # no 8.3 equivalent at all
)
find "$work/fat" -exec touch -h -d @1700000000 {} +

# fat_image NAME SIZE_MIB MKFS_ARGS...: mkfs.vfat, copy the staging tree, gzip.
fat_image() {
    local name=$1 size=$2
    shift 2
    local img="$work/$name.img"
    truncate -s "${size}M" "$img"
    mkfs.vfat --invariant "$@" "$img" >/dev/null
    mcopy -s -m -i "$img" "$work"/fat/* ::/
    # A deleted entry: create and delete a file (its slot stays as 0xE5).
    printf 'gone\n' > "$work/deleted-file.txt"
    touch -d @1700000000 "$work/deleted-file.txt"
    mcopy -m -i "$img" "$work/deleted-file.txt" ::/names/
    mdel -i "$img" ::/names/deleted-file.txt
    echo "$img"
}

img=$(fat_image fat12 20 -F 12 -s 16 -n BOOTFAT12 -i 1A2B3C4D)
gzip -9n -c "$img" > "$out/fat/fat12.img.gz"

# FAT16 with a fragmented file: a hole is freed before frag.bin is written, so
# its cluster chain is split into several runs.
img=$(fat_image fat16 24 -F 16 -s 4 -n BOOTFAT16 -i 0BADCAFE)
for i in 1 2 3; do head -c 20000 /dev/zero | tr '\0' "$i" > "$work/hole$i.bin"; touch -d @1700000000 "$work/hole$i.bin"; done
mcopy -m -i "$img" "$work/hole1.bin" "$work/hole2.bin" "$work/hole3.bin" ::/
mdel -i "$img" ::/hole2.bin
python3 -c "
import hashlib, sys
sys.stdout.buffer.write(b''.join(hashlib.sha256(b'frag%d' % i).digest() for i in range(2000)))
" > "$work/frag.bin"
touch -d @1700000000 "$work/frag.bin"
mcopy -m -i "$img" "$work/frag.bin" ::/
gzip -9n -c "$img" > "$out/fat/fat16.img.gz"

img=$(fat_image fat32 36 -F 32 -s 1 -n BOOTFAT32 -i DEADBEEF)
gzip -9n -c "$img" > "$out/fat/fat32.img.gz"

# 4096-byte logical sectors, no label in the root directory (mkfs -n is not given).
img="$work/fat12-4k.img"
truncate -s 4M "$img"
mkfs.vfat --invariant -F 12 -S 4096 -s 1 -i 00C0FFEE "$img" >/dev/null
mcopy -s -m -i "$img" "$work/fat/names" "$work/fat/grub" ::/
gzip -9n -c "$img" > "$out/fat/fat12-4k.img.gz"

# --- iso9660 ---------------------------------------------------------------
# xorriso: Rock Ridge + Joliet (the usual install-media shape).
xorriso -as mkisofs -quiet -R -J -V BOOT_RR_J -o "$work/rr-joliet.iso" "$work/tree" 2>/dev/null
gzip -9n -c "$work/rr-joliet.iso" > "$out/iso9660/rr-joliet.iso.gz"
# Joliet only (--norock: xorriso writes Rock Ridge by default): UCS-2 names, no symlinks.
xorriso -as mkisofs -quiet --norock -J -V BOOT_J -o "$work/joliet.iso" "$work/tree" 2>/dev/null
gzip -9n -c "$work/joliet.iso" > "$out/iso9660/joliet.iso.gz"
# Plain ISO level 1: 8.3 upper-case names with ;1 versions, no extensions.
xorriso -as mkisofs -quiet --norock -iso-level 1 -V PLAIN -o "$work/plain.iso" "$work/tree" 2>/dev/null
gzip -9n -c "$work/plain.iso" > "$out/iso9660/plain.iso.gz"
# genisoimage: old-style Rock Ridge (RRIP_1991A), deep directories relocated to
# rr_moved with CL/PL/RE entries, Joliet too.
genisoimage -quiet -R -J -V GENISO_RR -o "$work/genisoimage-rr.iso" "$work/tree" 2>/dev/null
gzip -9n -c "$work/genisoimage-rr.iso" > "$out/iso9660/genisoimage-rr.iso.gz"

ls -l "$out/fat" "$out/iso9660"
