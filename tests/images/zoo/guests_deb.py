"""Debian family guests: Debian 12 (one disk, and /boot on a second disk) and Ubuntu 24.04.

References (facts only; every text below is ours):
    Debian 12 installer's guided layout (root primary ``msdos1``, swap in a logical
    partition ``msdos5``), ``linux-base`` symlinks (``/vmlinuz``, ``/initrd.img`` and their
    ``.old`` in ``/`` on Debian, in ``/boot`` on Ubuntu), ``/etc/default/grub``
    (``GRUB_DEFAULT``, ``GRUB_DISABLE_SUBMENU``, ``GRUB_CMDLINE_LINUX_DEFAULT="quiet"``),
    Ubuntu 24.04 cloud image layout (root ``gpt1``, BIOS boot ``gpt14``, ESP ``gpt15``, an ESP
    ``EFI/ubuntu/grub.cfg`` that runs ``search.fs_uuid``, sets ``prefix`` and ``configfile``s
    ``/boot/grub/grub.cfg``), and ``grub-editenv`` (2.06+: the WARNING line).
"""

from __future__ import annotations

from pathlib import Path

from zoo.disk import Partition, make_gpt, make_mbr, mkfs_ext, mkfs_swap, mkfs_vfat
from zoo.guest import GuestBuild, Tree
from zoo.shapes_grub2 import Kernel, Search, debian_grub_cfg, grubenv, ubuntu_grub_cfg

__all__ = ["build_debian12", "build_debian12_2disk", "build_ubuntu2404"]

DEBIAN_OS_RELEASE = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                     'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
D12_KERNELS = ("6.1.0-28-amd64", "6.1.0-27-amd64")


def _debian_boot(tree: Tree, guest: str, directory: str) -> list[Kernel]:
    """Kernels, initrds and config/System.map under ``directory`` ('' or '/boot')."""
    out = []
    for version in D12_KERNELS:
        tree.kernel(f"{directory}/vmlinuz-{version}", extras_version=version)
        tree.initramfs(f"{directory}/initrd.img-{version}", f"{guest}/{version}", mode=0o644)
        out.append(version)
    return [Kernel(v, f"{directory}/vmlinuz-{v}", f"{directory}/initrd.img-{v}", "") for v in out]


def _with_args(kernels: list[Kernel], args: str, recovery: str) -> list[Kernel]:
    return [Kernel(k.version, k.kernel, k.initrd, args, recovery) for k in kernels]


# ----------------------------------------------------------------------------- Debian 12

D12_ROOT_UUID = "0b5e6f7a-8c9d-4e0f-a1b2-c3d4e5f60712"
D12_SWAP_UUID = "1c6f7a8b-9d0e-4f1a-b2c3-d4e5f6071812"


def build_debian12(guest: GuestBuild) -> list[Path]:
    """Debian 12: MBR (ext4 root msdos1 holding /boot, swap in logical msdos5), submenu, ``default="1>2"``."""
    search = Search("hd0,msdos1", D12_ROOT_UUID, "ext2", "part_msdos")
    root = guest.tree("root", device="hd0,msdos1")
    kernels = _with_args(_debian_boot(root, "debian12", "/boot"), f"root=UUID={D12_ROOT_UUID} ro  quiet",
                         f"root=UUID={D12_ROOT_UUID} ro single ")
    root.symlink("/vmlinuz", "boot/vmlinuz-6.1.0-28-amd64")
    root.symlink("/initrd.img", "boot/initrd.img-6.1.0-28-amd64")
    root.symlink("/vmlinuz.old", "boot/vmlinuz-6.1.0-27-amd64")
    root.symlink("/initrd.img.old", "boot/initrd.img-6.1.0-27-amd64")
    cfg = debian_grub_cfg(default="1>2", search=search, kernels=kernels, root_uuid=D12_ROOT_UUID)
    env = grubenv([], warning=True)
    root.write("/boot/grub/grub.cfg", cfg, 0o444)
    root.write("/boot/grub/grubenv", env)
    guest.oracle_bundle(config_path="/boot/grub/grub.cfg", table="dos", uuid=D12_ROOT_UUID,
                        files={"/boot/grub/grub.cfg": cfg, "/boot/grub/grubenv": env})
    root.mkdir("/boot/grub/i386-pc", "/boot/grub/fonts", "/boot/grub/locale")
    root.os_root(os_release=DEBIAN_OS_RELEASE, hostname="bookworm",
                 fstab=("# /etc/fstab: static file system information.\n"
                        f"UUID={D12_ROOT_UUID} /               ext4    errors=remount-ro 0       1\n"
                        f"UUID={D12_SWAP_UUID} none            swap    sw              0       0\n"),
                 extra={"/etc/debian_version": "12.8\n",
                        "/etc/default/grub": ('GRUB_DEFAULT="1>2"\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s '
                                              '2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
                                              'GRUB_CMDLINE_LINUX=""\n')})
    root_img = mkfs_ext(root.root, guest.path("root.img"), 96, kind="ext4", uuid=D12_ROOT_UUID, label="")
    swap_img = mkfs_swap(guest.path("swap.img"), 8, uuid=D12_SWAP_UUID)
    disk = make_mbr(guest.out / "debian12.img", 108, [
        Partition(1, 96, "83", root_img, bootable=True),
        Partition(98, 8, "82", swap_img, logical=True),
    ], label_id="0x3e9b0b12")
    return [disk]


# ----------------------------------------------------------------------------- Debian 12, /boot on disk 2

D2_ROOT_UUID = "2d7a8b9c-0e1f-4a2b-83c4-d5e6f7081922"
D2_BOOT_UUID = "3e8b9c0d-1f2a-4b3c-94d5-e6f708192a22"


def build_debian12_2disk(guest: GuestBuild) -> list[Path]:
    """Debian 12 with root on xvda and /boot on xvdb (hd1,msdos1); no submenu, saved_entry = an id."""
    search = Search("hd1,msdos1", D2_BOOT_UUID, "ext2", "part_msdos", baremetal="ahci1")
    root_search = Search("hd0,msdos1", D2_ROOT_UUID, "ext2", "part_msdos")
    boot = guest.tree("boot", device="hd1,msdos1")
    kernels = _with_args(_debian_boot(boot, "debian12-2disk", ""),
                         f"root=UUID={D2_ROOT_UUID} ro console=hvc0 quiet", f"root=UUID={D2_ROOT_UUID} ro single console=hvc0")
    cfg = debian_grub_cfg(default="saved", search=search, kernels=kernels, submenu=False, root_uuid=D2_ROOT_UUID,
                          root_search=root_search)
    env = grubenv([("saved_entry", f"gnulinux-6.1.0-27-amd64-advanced-{D2_ROOT_UUID}")], warning=True)
    boot.write("/grub/grub.cfg", cfg, 0o444)
    boot.write("/grub/grubenv", env)
    guest.oracle_bundle(config_path="/grub/grub.cfg", table="dos", uuid=D2_BOOT_UUID,
                        files={"/grub/grub.cfg": cfg, "/grub/grubenv": env})
    boot.mkdir("/grub/i386-pc", "/grub/fonts", "/lost+found")
    boot_img = mkfs_ext(boot.root, guest.path("boot.img"), 48, kind="ext4", uuid=D2_BOOT_UUID, label="")
    root = guest.tree("root", device="hd0,msdos1")
    root.symlink("/vmlinuz", "boot/vmlinuz-6.1.0-28-amd64")
    root.symlink("/initrd.img", "boot/initrd.img-6.1.0-28-amd64")
    root.os_root(os_release=DEBIAN_OS_RELEASE, hostname="bookworm-2disk",
                 fstab=(f"UUID={D2_ROOT_UUID} /               ext4    errors=remount-ro 0       1\n"
                        f"UUID={D2_BOOT_UUID} /boot           ext4    defaults        0       2\n"),
                 extra={"/etc/debian_version": "12.8\n",
                        "/etc/default/grub": ('GRUB_DEFAULT=saved\nGRUB_DISABLE_SUBMENU=y\nGRUB_TIMEOUT=5\n'
                                              'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=hvc0"\n')})
    root_img = mkfs_ext(root.root, guest.path("root.img"), 24, kind="ext4", uuid=D2_ROOT_UUID, label="")
    disk0 = make_mbr(guest.out / "debian12-2disk-xvda.img", 26, [Partition(1, 24, "83", root_img, bootable=True)],
                     label_id="0x2d15c000")
    disk1 = make_mbr(guest.out / "debian12-2disk-xvdb.img", 50, [Partition(1, 48, "83", boot_img)],
                     label_id="0x2d15c001")
    return [disk0, disk1]


# ----------------------------------------------------------------------------- Ubuntu 24.04

U24_ROOT_UUID = "4f9c0d1e-2a3b-4c4d-a5e6-f708192a3b24"
U24_KERNELS = ("6.8.0-45-generic", "6.8.0-41-generic")


def build_ubuntu2404(guest: GuestBuild) -> list[Path]:
    """Ubuntu 24.04: GPT (root gpt1, BIOS boot gpt14, ESP stub gpt15), recordfail, gfxmode -> $vt_handoff."""
    search = Search("hd0,gpt1", U24_ROOT_UUID, "ext2", "part_gpt", hints=False, set_root=False)
    root = guest.tree("root", device="hd0,gpt1")
    kernels = []
    for version in U24_KERNELS:
        root.kernel(f"/boot/vmlinuz-{version}", extras_version=version)
        root.initramfs(f"/boot/initrd.img-{version}", f"ubuntu2404/{version}")
        kernels.append(Kernel(version, f"/boot/vmlinuz-{version}", f"/boot/initrd.img-{version}",
                              f"root=UUID={U24_ROOT_UUID} ro  quiet splash $vt_handoff",
                              f"root=UUID={U24_ROOT_UUID} ro recovery nomodeset dis_ucode_ldr "))
    root.symlink("/boot/vmlinuz", f"vmlinuz-{U24_KERNELS[0]}")
    root.symlink("/boot/initrd.img", f"initrd.img-{U24_KERNELS[0]}")
    root.symlink("/boot/vmlinuz.old", f"vmlinuz-{U24_KERNELS[1]}")
    root.symlink("/boot/initrd.img.old", f"initrd.img-{U24_KERNELS[1]}")
    cfg = ubuntu_grub_cfg(search=search, kernels=kernels, root_uuid=U24_ROOT_UUID)
    env = grubenv([], warning=True)
    root.write("/boot/grub/grub.cfg", cfg, 0o444)
    root.write("/boot/grub/grubenv", env)
    guest.oracle_bundle(config_path="/boot/grub/grub.cfg", table="gpt", uuid=U24_ROOT_UUID,
                        files={"/boot/grub/grub.cfg": cfg, "/boot/grub/grubenv": env})
    root.mkdir("/boot/grub/i386-pc", "/boot/grub/x86_64-efi", "/boot/grub/fonts", "/boot/efi")
    root.os_root(os_release=('PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                             'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n'),
                 hostname="noble",
                 fstab=("LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,commit=30,errors=remount-ro\t0 1\n"
                        "LABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n"),
                 extra={"/etc/debian_version": "trixie/sid\n",
                        "/etc/default/grub": ('GRUB_DEFAULT=0\nGRUB_TIMEOUT_STYLE=hidden\nGRUB_TIMEOUT=0\n'
                                              'GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Ubuntu} ) '
                                              '2>/dev/null || echo Ubuntu`\n'
                                              'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\nGRUB_CMDLINE_LINUX=""\n')})
    root_img = mkfs_ext(root.root, guest.path("root.img"), 96, kind="ext4", uuid=U24_ROOT_UUID, label="cloudimg-rootfs")
    esp = guest.tree("esp", device="hd0,gpt15")
    esp.write("/EFI/ubuntu/grub.cfg", f"search.fs_uuid {U24_ROOT_UUID} root hd0,gpt1 \n"
                                      "set prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n")
    esp.write("/EFI/BOOT/README.txt", "placeholder: shim and grubx64.efi are not shipped in the zoo\n")
    esp_img = mkfs_vfat(esp.root, guest.path("esp.img"), 32, fat=16, volid="4F9C0D1E", label="UEFI")
    disk = make_gpt(guest.out / "ubuntu2404.img", 134, [
        Partition(1, 4, "EF02", number=14, uuid="4A4A2404-000E-4E00-8000-000000002414"),
        Partition(5, 32, "EF00", esp_img, number=15, uuid="4A4A2404-000F-4E00-8000-000000002415"),
        Partition(37, 96, "8300", root_img, number=1, uuid="4A4A2404-0001-4E00-8000-000000002401"),
    ], disk_guid="4A4A2404-0000-4E00-8000-000000002400")
    return [disk]
