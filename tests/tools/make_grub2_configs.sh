#!/bin/sh
# Generate the Debian 12 grub.cfg fixtures with the real grub-mkconfig (GRUB 2.06, Debian
# 12's /etc/grub.d scripts), for tests/configs/grub2/debian12*/.
#
# grub-mkconfig looks at the running system.  In a private mount namespace this script
# puts a fake /boot (kernels, initrds, config-* files, a Xen hypervisor) over /boot and a
# fake grub-probe over /usr/sbin/grub-probe that answers for the disk described below;
# grub-mkrelpath and grub-file are replaced through the variables grub-mkconfig_lib reads.
# Nothing on the host changes.  Needs root (unshare -m), grub-common, grub-emu's scripts.
#
#   tests/tools/make_grub2_configs.sh            writes the fixtures
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/configs/grub2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ROOT_UUID=2f4c8a0e-5d1b-4b7e-9a43-0c2d6e8f1a37
ROOT_PARTUUID=6e0f1c2a-01

cat > "$tmp/grub-probe" <<EOF
#!/bin/sh
# fake grub-probe: one ext4 root filesystem on /dev/vda1 = (hd0,msdos1)
target=; device=
for a in "\$@"; do
  case "\$a" in
    --target=*) target=\${a#--target=} ;;
    --device) ;;
  esac
done
case "\$target" in
  device) echo /dev/vda1 ;;
  fs) echo ext2 ;;
  fs_uuid) echo $ROOT_UUID ;;
  partuuid) echo $ROOT_PARTUUID ;;
  partmap) echo msdos ;;
  abstraction) echo ;;
  drive) echo "(hd0,msdos1)" ;;
  compatibility_hint) echo hd0,msdos1 ;;
  hints_string) echo "--hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1" ;;
  disk) echo /dev/vda ;;
  *) echo ;;
esac
EOF
cat > "$tmp/grub-mkrelpath" <<'EOF'
#!/bin/sh
# fake grub-mkrelpath: /boot lives on the root filesystem
echo "$1"
EOF
cat > "$tmp/grub-file" <<'EOF'
#!/bin/sh
# fake grub-file: the Xen image is an x86 multiboot2 kernel
case "$1" in --is-x86-multiboot2) exit 0 ;; *) exit 1 ;; esac
EOF
chmod +x "$tmp/grub-probe" "$tmp/grub-mkrelpath" "$tmp/grub-file"

mkboot() {  # the fake /boot
  b=$1
  mkdir -p "$b/grub"
  for v in 6.1.0-13-amd64 6.1.0-12-amd64; do
    echo "vmlinuz $v" > "$b/vmlinuz-$v"
    echo "initrd $v" > "$b/initrd.img-$v"
    printf 'CONFIG_XEN_DOM0=y\n' > "$b/config-$v"
    echo "System.map $v" > "$b/System.map-$v"
  done
  echo "xen 4.17" > "$b/xen-4.17-amd64.gz"
}

generate() {  # name, extra environment (GRUB_* settings)
  name=$1; shift
  mkdir -p "$tmp/boot-$name" "$out/$name"
  mkboot "$tmp/boot-$name"
  unshare -m --propagation private sh -c '
    set -e
    mount --bind "$1/boot-$2" /boot
    mount --bind "$1/grub-probe" /usr/sbin/grub-probe
    d=$1; n=$2; shift 2
    env "$@" /usr/sbin/grub-mkconfig -o "$d/out-$n.cfg"
  ' sh "$tmp" "$name" grub_mkrelpath="$tmp/grub-mkrelpath" grub_file="$tmp/grub-file" \
      GRUB_DISTRIBUTOR=Debian GRUB_TIMEOUT=5 GRUB_CMDLINE_LINUX_DEFAULT=quiet GRUB_CMDLINE_LINUX= \
      GRUB_DISABLE_OS_PROBER=true "$@" 2>"$tmp/log-$name"
  cp "$tmp/out-$name.cfg" "$out/$name/grub.cfg"
  echo "wrote $out/$name/grub.cfg"
}

generate debian12
generate debian12-saved GRUB_DEFAULT=saved GRUB_SAVEDEFAULT=true GRUB_TIMEOUT_STYLE=hidden GRUB_TIMEOUT=0
