#!/usr/bin/env bash
# Build the XFS test images in tests/data/xfs/ with mkfs.xfs -p (no mounting).
#
#   tests/tools/make_xfs_fixtures.sh            build every image
#   tests/tools/make_xfs_fixtures.sh v5-4k      build one
#
# Each image holds the shared /boot tree (tests/tools/boot_tree.py), the XFS
# extras (tests/tools/xfs_extras.py: one directory per directory form, remote
# symlinks, devices, odd names and modes) and, for some, /big-dir.  After mkfs
# the script asks xfs_db which form every forms/* directory really has and
# fails if it is not the one the directory is named after, so a change in
# xfsprogs' allocation cannot silently drop coverage.
#
# xfsprogs >= 5.19 refuses filesystems under 300 MiB unless it believes it runs
# under fstests; TEST_DEV/TEST_DIR/QA_CHECK_FS say so.  The images are 32 or 64 MiB,
# mostly zeros; each gzips to under 300 KiB.  Pinned: xfsprogs 6.1.0 (Debian 12).
#
# The v5-mounted image cannot be made with a protofile (real holes, unwritten
# extents, a fragmented file, reflinks, times outside 1970-2038); it is built on a
# loop mount as root by make_xfs_mounted_fixture.sh, once, and committed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${XFS_FIXTURE_OUT:-$repo/tests/data/xfs}"  # XFS_FIXTURE_OUT: build elsewhere (to compare)
mkdir -p "$out"
export TEST_DEV=virtkit TEST_DIR=virtkit QA_CHECK_FS=virtkit  # allow < 300 MiB (see above)

UUID_BASE="5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f"   # + one hex digit per image

# name  profile  big-dir  uuid-digit  label  size  mkfs options...
# Directory blocks are 4 KiB in all (the mkfs minimum), i.e. 1, 2, 4 or 8 filesystem
# blocks.  An AG must be at least 16 MiB, hence 64 MiB where there are more than 2 AGs.
variants=(
  "v5-4k|v5|0|0|virtkit-v5|32m|"
  "v5-2k|v5|300|1|v5-2k|32m|-b size=2048"
  "v5-nrext64|v5|0|2|nrext64|64m|-b size=1024 -i nrext64=1 -m rmapbt=1 -d agcount=4"
  "v4-ftype0|v4|300|3|v4-ftype0|32m|-m crc=0 -n ftype=0 -b size=1024"
  "v4-ftype1-ci|v4|0|4|V4-CI|64m|-m crc=0 -b size=512 -n ftype=1,version=ci -d agcount=3"
)

xfs_form() {  # image path -> "form fork"
  local img="$1" path="$2" info fmt blog leaf free max
  info=$(xfs_db -r "$img" -c "path $path" -c "print core.format" -c "bmap" 2>&1)
  fmt=$(sed -n 's/^core.format = [0-9]* (\(.*\))$/\1/p' <<<"$info")
  if [ "$fmt" = local ]; then echo "shortform local"; return; fi
  blog=$(xfs_db -r "$img" -c "sb 0" -c "print blocklog" | sed 's/.*= //')
  leaf=$(( (1 << 35) >> blog )); free=$(( (2 << 35) >> blog ))
  max=$(sed -n 's/^data offset \([0-9]*\) .*/\1/p' <<<"$info" | sort -n | tail -1)
  if [ "$max" -ge "$free" ]; then echo "node $fmt"
  elif [ "$max" -ge "$leaf" ]; then echo "leaf $fmt"
  else echo "block $fmt"; fi
}

build() {
  local name="$1" profile="$2" big="$3" digit="$4" label="$5" size="$6" opts="$7"
  local work img
  work=$(mktemp -d /tmp/virtkit-xfs.XXXXXX)
  img="$work/xfs-$name.img"
  mkdir "$work/tree"
  python3 "$here/boot_tree.py" "$work/tree" --big-dir "$big"
  python3 "$here/xfs_extras.py" "$work/tree" "$profile"
  python3 "$here/xfs_protofile.py" "$work/tree" > "$work/proto"
  truncate -s "$size" "$img"
  # shellcheck disable=SC2086
  mkfs.xfs -q -f -L "$label" -m uuid="${UUID_BASE}${digit}" $opts -p "$work/proto" "$img"
  local want got
  for want in "shortform:sf" "block:block" "leaf:leaf" "node:node" "node:btree"; do
    got=$(xfs_form "$img" "/forms/${want#*:}")
    case "${want#*:}" in
      btree) [ "$got" = "node btree" ] || { echo "$name: forms/btree is '$got', want 'node btree'" >&2; exit 1; } ;;
      *) [ "${got% *}" = "${want%%:*}" ] || { echo "$name: forms/${want#*:} is '$got', want '${want%%:*}'" >&2; exit 1; } ;;
    esac
    echo "  $name: /forms/${want#*:}: $got"
  done
  if [ "$big" != 0 ]; then echo "  $name: /big-dir: $(xfs_form "$img" /big-dir)"; fi
  xfs_repair -n -f "$img" >/dev/null 2>&1 || { echo "$name: xfs_repair -n found problems" >&2; exit 1; }
  gzip -9n < "$img" > "$out/xfs-$name.img.gz"
  echo "$out/xfs-$name.img.gz: $(stat -c %s "$out/xfs-$name.img.gz") bytes"
  rm -rf "$work"
}

for v in "${variants[@]}"; do
  IFS='|' read -r name profile big digit label size opts <<<"$v"
  if [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]; then
    build "$name" "$profile" "$big" "$digit" "$label" "$size" "$opts"
  fi
done
