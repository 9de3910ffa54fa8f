#!/bin/sh
# Build the ext2/ext3/ext4 fixtures in tests/data/ext4/ with real e2fsprogs, no mounting.
#
# Every image holds the shared /boot tree of tests/tools/boot_tree.py (made with
# `mkfs.* -d DIR`), so tests/fs_contract.py's assert_boot_tree() runs on each.
# Timestamps, UUIDs and hash seeds are pinned so a rebuild gives the same images
# (E2FSPROGS_FAKE_TIME; -U; -E hash_seed=), and mke2fs reads a pinned copy of
# Debian 12's mke2fs.conf rather than the host's.
#
# Usage: tests/tools/make_ext4_fixtures.sh [OUTDIR]     (default: tests/data/ext4)
#        ONLY=NAME tests/tools/make_ext4_fixtures.sh      rebuild just NAME.img.gz
# Tools: e2fsprogs (mke2fs 1.47.0 made the committed images), python3, gzip.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../data/ext4}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/mke2fs.conf" <<'CONF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext3 = {
		features = has_journal
	}
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
CONF
export MKE2FS_CONFIG="$work/mke2fs.conf"
export E2FSPROGS_FAKE_TIME=1700000000
export TZ=UTC

python3 "$here/boot_tree.py" "$work/tree"
mkdir "$work/tree-big"
python3 "$here/boot_tree.py" "$work/tree-big" --big-dir 3000

# Extras beside the shared tree (tests/unit/fs/ext4 checks them by name):
#   ext4-default: /extras/prealloc - 64 KiB, block 0 data, blocks 1-15 unwritten
#                 (fallocate below), blocks 16-19 preallocated past the end of file.
#   ext2:         /extras/triple  - 4 GB sparse file whose one data block needs the
#                 triple-indirect pointer (logical block 1049612 > 12 + 1024 + 1024^2).
cp -a "$work/tree" "$work/tree-default"
mkdir "$work/tree-default/extras"
python3 - "$work/tree-default/extras/prealloc" <<'PY'
import hashlib, os, sys
with open(sys.argv[1], "wb") as f:
    f.write(hashlib.sha256(b"prealloc").digest() * 128)
    f.truncate(65536)
os.utime(sys.argv[1], (1700000000, 1700000000))
PY
cp -a "$work/tree" "$work/tree-ext2"
mkdir "$work/tree-ext2/extras"
python3 - "$work/tree-ext2/extras/triple" <<'PY'
import hashlib, os, sys
with open(sys.argv[1], "wb") as f:
    f.seek(1049612 * 4096)
    f.write(hashlib.sha256(b"triple").digest() * 128)
    f.truncate(1049613 * 4096 + 100)
os.utime(sys.argv[1], (1700000000, 1700000000))
PY

# make NAME SIZE TREE MKFS-ARGS...
#   POST="debugfs commands": run them on the image afterwards (debugfs -w)
#   INDEX_DIRS=1: also run e2fsck -D (htree directories)
make() {
	name=$1; size=$2; tree=$3; shift 3
	if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then
		POST=; INDEX_DIRS=
		return 0
	fi
	img="$work/$name.img"
	truncate -s "$size" "$img"
	"$@" -T default -q -F -d "$tree" "$img"
	if [ -n "${POST:-}" ]; then
		debugfs -w -f - "$img" >/dev/null 2>&1 <<DEBUGFS
$POST
DEBUGFS
	fi
	if [ -n "${INDEX_DIRS:-}" ]; then
		# mke2fs -d writes linear directories; e2fsck -D rebuilds big ones as htrees.
		# (exit status 1 = "file system was modified", expected here)
		e2fsck -fyD "$img" >/dev/null 2>&1 || [ $? -eq 1 ]
	fi
	e2fsck -fn "$img" >/dev/null 2>&1
	gzip -9n < "$img" > "$out/$name.img.gz"
	printf '%-28s %8d bytes gzipped\n' "$name.img.gz" "$(wc -c < "$out/$name.img.gz")"
	POST=; INDEX_DIRS=
}
POST=; INDEX_DIRS=

seed=-Ehash_seed=6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f
T=$work/tree

POST="fallocate /extras/prealloc 1 19"
make ext4-default     16M "$work/tree-default" mkfs.ext4 -t ext4 -b 4096 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a01 -L boot-ext4 "$seed"
make ext4-no64bit     16M "$T" mkfs.ext4 -t ext4 -b 4096 -O ^64bit -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a02 -L no64bit "$seed"
make ext4-noextent    16M "$T" mkfs.ext4 -t ext4 -b 4096 -O ^extent,^64bit -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a03 "$seed"
make ext2             16M "$work/tree-ext2" mkfs.ext2 -t ext2 -b 4096 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a04 -L "ext2 boot" "$seed"
# ext2 with 1 KiB blocks and no filetype feature: 16-bit name_len, no types in entries,
# and the kernels' double-indirect blocks (2 MiB vmlinuz > 12 + 256 blocks).
make ext2-nofiletype  16M "$T" mkfs.ext2 -t ext2 -b 1024 -O ^filetype -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0e -L "no filetype" "$seed"
make ext3             16M "$T" mkfs.ext3 -t ext3 -b 4096 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a05 -L ext3 "$seed"
make ext4-1k          16M "$T" mkfs.ext4 -t ext4 -b 1024 -g 2048 -N 1024 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a06 -L one-k "$seed"
make ext4-64k         16M "$T" mkfs.ext4 -t ext4 -b 65536 -O ^has_journal -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a07 -L sixty-four-k "$seed"
make ext4-inode128    16M "$T" mkfs.ext4 -t ext4 -b 4096 -I 128 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a08 "$seed"
# mke2fs 1.47.0 -d with inline_data loses a trailing hole (sparse.img comes out 6 MiB
# + 8 KiB instead of 8 MiB; debugfs agrees): restore the source's size.
POST="sif /sparse.img size 8388608"
make ext4-inline      16M "$T" mkfs.ext4 -t ext4 -b 4096 -O inline_data -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a09 "$seed"
make ext4-metabg      16M "$T" mkfs.ext4 -t ext4 -b 1024 -g 256 -N 2048 -O meta_bg,^resize_inode -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0a "$seed"
make ext4-sparse2     16M "$T" mkfs.ext4 -t ext4 -b 1024 -g 1024 -N 1024 -O sparse_super2 -E num_backup_sb=2 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0b "$seed"
# bigalloc (64 KiB clusters of 4 KiB blocks) with 1 KiB inodes (a large in-inode xattr area).
make ext4-bigalloc    24M "$T" mkfs.ext4 -t ext4 -b 4096 -O bigalloc -C 65536 -I 1024 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0f "$seed"
INDEX_DIRS=1
make ext4-bigdir      24M "$work/tree-big" mkfs.ext4 -t ext4 -b 1024 -N 4096 -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0c "$seed"

# One image written by the Linux kernel itself: inline_data directories that spill from
# i_block into the system.data xattr (mke2fs -d converts them to blocks instead) and
# inline files.  Needs root and a loop device, so it is made once and committed; set
# SKIP_MOUNT=1 to rebuild only the images above.
name=ext4-kernel-inline
if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then
	:
elif [ "$(id -u)" = 0 ] && [ "${SKIP_MOUNT:-0}" != 1 ]; then
	img="$work/$name.img"
	truncate -s 16M "$img"
	mkfs.ext4 -T default -q -F -t ext4 -b 4096 -O inline_data -U 0d1c7f1e-5a8a-4a5e-9a3b-3c3d2e1f0a0d "$seed" "$img"
	mkdir "$work/mnt"
	mount -o loop "$img" "$work/mnt"
	cp -a "$T"/. "$work/mnt"/
	mkdir "$work/mnt/extras" "$work/mnt/extras/spill"
	for n in alpha bravo charlie delta echo foxtrot; do printf '%s\n' "$n" > "$work/mnt/extras/spill/$n"; done
	python3 -c 'import sys; sys.stdout.write("".join(chr(48 + i % 10) for i in range(100)))' > "$work/mnt/extras/inline-100"
	printf 'from the future\n' > "$work/mnt/extras/future"
	touch -h -d @1700000000 "$work/mnt/extras/spill"/* "$work/mnt/extras/spill"
	# Nanoseconds, and a date past 2038 (the *_extra epoch bits).
	touch -d @1700000000.987654321 "$work/mnt/extras/inline-100"
	touch -d @4102444800.123456789 "$work/mnt/extras/future"
	touch -d @1700000000 "$work/mnt/extras"
	umount "$work/mnt"
	e2fsck -fn "$img" >/dev/null 2>&1
	gzip -9n < "$img" > "$out/$name.img.gz"
	printf '%-28s %8d bytes gzipped\n' "$name.img.gz" "$(wc -c < "$out/$name.img.gz")"
else
	echo "skipping $name.img.gz (needs root and a loop mount; the committed copy stays)" >&2
fi
