#!/usr/bin/env bash
# Build tests/data/xfs/xfs-v5-mounted.img.gz on a loop mount (root only; run once, commit).
#
# A protofile cannot express what this image holds, so the kernel writes it:
#   /            the shared /boot tree, copied with holes kept (sparse.img is truly sparse)
#   /links/long  a 1000-byte target: a remote symlink over two 1 KiB blocks (one "XSLM" header
#                per extent)
#   /prealloc    64 KiB preallocated (unwritten) with 4 KiB written in the middle
#   /keep-size   4 KiB written, 60 KiB preallocated past EOF (fallocate --keep-size)
#   /frag        2000 one-block extents with holes between: a two-level bmbt
#   /reflink/a, /reflink/b   b shares a's blocks (cp --reflink=always)
#   /times/future, /times/past   mtimes in 2200 and 1950 (bigtime, negative legacy range)
#   /churn/      1000 files created, 2 of 3 deleted: stale leaf entries, free regions
#   /xattr-dir/  a shortform directory whose inode also holds xattrs (di_forkoff != 0)
#   /xattr-file  a file with inline xattrs (data fork shrunk by the attribute fork)
#
# Usage: tests/tools/make_xfs_mounted_fixture.sh     (needs root, loop devices, xfs_io)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${XFS_FIXTURE_OUT:-$repo/tests/data/xfs}/xfs-v5-mounted.img.gz"  # XFS_FIXTURE_OUT: build elsewhere
[ "$(id -u)" = 0 ] || { echo "needs root (loop mount)" >&2; exit 1; }
export TEST_DEV=virtkit TEST_DIR=virtkit QA_CHECK_FS=virtkit  # allow < 300 MiB

work=$(mktemp -d /tmp/virtkit-xfsm.XXXXXX)
img="$work/xfs-v5-mounted.img"
mnt="$work/mnt"
mkdir "$mnt" "$work/tree"
cleanup() { mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT

python3 "$here/boot_tree.py" "$work/tree"
truncate -s 64m "$img"
mkfs.xfs -q -f -b size=1024 -L mounted -m uuid=5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f5 "$img"
mount -o loop "$img" "$mnt"

cp -a --sparse=always "$work/tree/." "$mnt/"
mkdir "$mnt/links"
ln -s "../deep/a/b/c/d/e/f/g/h/i/j/$(printf './%.0s' $(seq 1 482))file.txt" "$mnt/links/long"
xfs_io -f -c "falloc 0 64k" -c "pwrite -S 0x5a 16k 4k" "$mnt/prealloc" >/dev/null
xfs_io -f -c "pwrite -S 0x33 0 4k" -c "falloc -k 4k 60k" "$mnt/keep-size" >/dev/null
args=()
for i in $(seq 0 1999); do args+=(-c "pwrite -S $((i % 251)) $((i * 2048)) 1024"); done
xfs_io -f "${args[@]}" "$mnt/frag" >/dev/null
mkdir "$mnt/reflink"
xfs_io -f -c "pwrite -S 0x77 0 256k" "$mnt/reflink/a" >/dev/null
cp --reflink=always "$mnt/reflink/a" "$mnt/reflink/b"
mkdir "$mnt/times"
echo future > "$mnt/times/future"; touch -d "2200-01-01 00:00:00.5 UTC" "$mnt/times/future"
echo past > "$mnt/times/past"; touch -d "1950-06-15 12:00:00 UTC" "$mnt/times/past"
mkdir "$mnt/churn"
for i in $(seq 0 999); do echo "$i" > "$mnt/churn/file-$i-$(printf 'z%.0s' $(seq 0 $((i % 17))))"; done
for i in $(seq 0 999); do
  if [ $((i % 3)) != 0 ]; then rm "$mnt/churn/file-$i-"*; fi
done
mkdir "$mnt/xattr-dir"
echo a > "$mnt/xattr-dir/a"; echo b > "$mnt/xattr-dir/b"
setfattr -n user.note -v "$(printf 'x%.0s' $(seq 1 100))" "$mnt/xattr-dir"
xfs_io -f -c "pwrite -S 0x44 0 3k" "$mnt/xattr-file" >/dev/null
for k in 1 2 3 4; do setfattr -n "user.k$k" -v "value-$k-$(printf 'v%.0s' $(seq 1 30))" "$mnt/xattr-file"; done
sync
umount "$mnt"
# The clean log still holds ~90 KiB of old transactions that gzip cannot shrink: reformat it
# empty, at a cycle past every metadata LSN (the reader never looks at the log).  The cycle
# is the highest LSN cycle stamped in metadata (xfs_repair reports it) plus one.
cycle=$(xfs_repair -n -f "$img" 2>&1 | sed -n 's/.*Maximum metadata LSN (\([0-9]*\):.*/\1/p')
cycle=$(( ${cycle:-1} + 1 ))
xfs_db -x -c "logformat -c $cycle" "$img" >/dev/null

xfs_repair -n -f "$img" >/dev/null 2>&1 || { echo "xfs_repair -n found problems" >&2; exit 1; }
xfs_db -r "$img" -c "path /frag" -c "print core.format core.nextents u3.bmbt.level"
gzip -9n < "$img" > "$out"
echo "$out: $(stat -c %s "$out") bytes"
