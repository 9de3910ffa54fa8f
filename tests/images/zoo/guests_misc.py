"""Other families: openSUSE Tumbleweed (btrfs + snapper), Alpine (extlinux), Arch (systemd-boot).

References (facts only; every text below is ours):
    openSUSE's btrfs layout (``@``, ``@/.snapshots``, snapper's ``@/.snapshots/N/snapshot`` with
    ``info.xml``, snapshot 1 the default subvolume, read-only pre-update snapshots, ``@/home``,
    ``@/var``, ``@/boot/grub2/i386-pc`` as own subvolumes; ``/boot`` inside the snapshot; the
    kernel update re-running dracut for every installed kernel; ``GRUB_DEFAULT=saved``);
    Alpine's ``update-extlinux`` output (``DEFAULT menu.c32``, ``PROMPT 0``, ``MENU HIDDEN``,
    ``TIMEOUT`` in tenths, one ``LABEL`` per flavour with ``MENU LABEL``/``LINUX``/``INITRD``/
    ``APPEND``, ``MENU DEFAULT`` on the configured ``default=`` flavour, the ``/boot/boot -> .``
    symlink, ``vmlinuz-lts``/``initramfs-lts``); Arch's systemd-boot layout (ESP mounted at
    ``/boot``, ``loader/loader.conf`` with ``default``/``timeout``/``console-mode``/``editor``,
    ``loader/entries/arch*.conf`` with two ``initrd`` lines, microcode first).
"""

from __future__ import annotations

from pathlib import Path

from zoo.disk import Partition, copy_tree, make_gpt, make_mbr, mkfs_btrfs_subvols, mkfs_ext, mkfs_swap, mkfs_vfat
from zoo.guest import GuestBuild, Tree
from zoo.shapes_grub2 import Kernel, Search, grubenv, suse_grub_cfg
from zoo.tools import run

__all__ = ["build_alpine319", "build_arch", "build_opensuse_tw"]

# ----------------------------------------------------------------------------- openSUSE Tumbleweed

SUSE_UUID = "5a0d1e2f-3b4c-4d5e-86f7-08192a3b4c5d"
SUSE_SWAP_UUID = "6b1e2f3a-4c5d-4e6f-9708-192a3b4c5d6e"
SUSE_OS = "openSUSE Tumbleweed"
SUSE_ARGS = f"root=UUID={SUSE_UUID}  ${{extra_cmdline}} splash=silent mitigations=auto quiet security=apparmor"
SUSE_RECOVERY = (f"root=UUID={SUSE_UUID}  ${{extra_cmdline}} showopts apm=off noresume edd=off powersaved=off "
                 "nohz=off highres=off processor.max_cstate=1 nomodeset x11failsafe")
SNAPSHOT_INFO = """<?xml version="1.0"?>
<snapshot>
  <type>{type}</type>
  <num>{num}</num>
  <date>2024-10-0{num} 09:00:00</date>
  <description>{description}</description>{extra}
</snapshot>
"""


def _suse_root(guest: GuestBuild, label: str, kernels: list[str], saved_entry: str, tag: str) -> Tree:
    """One state of the root subvolume (snapshot 1 now, or what snapshot 2 captured)."""
    search = Search("hd0,gpt2", SUSE_UUID, "btrfs", "part_gpt")
    t = guest.tree(label, device="hd0,gpt2", prefix=f"/@/.snapshots/{1 if tag == 'now' else 2}/snapshot")
    ks = []
    for version in kernels:
        t.kernel(f"/boot/vmlinuz-{version}", extras_version=version)
        marker = f"opensuse-tw/{version}" + ("" if tag == "now" else "@snapshot-2")
        t.initramfs(f"/boot/initrd-{version}", marker)
        ks.append(Kernel(version, f"/boot/vmlinuz-{version}", f"/boot/initrd-{version}", SUSE_ARGS, SUSE_RECOVERY))
    t.symlink("/boot/vmlinuz", f"vmlinuz-{kernels[0]}")
    t.symlink("/boot/initrd", f"initrd-{kernels[0]}")
    cfg = suse_grub_cfg(search=search, kernels=ks, root_uuid=SUSE_UUID, os_name=SUSE_OS)
    env = grubenv([("saved_entry", saved_entry)], warning=True)
    t.write("/boot/grub2/grub.cfg", cfg, 0o600)
    t.write("/boot/grub2/grubenv", env)
    if tag == "now":  # what GRUB sees through btrfs_relative_path: the default subvolume's files
        guest.oracle_bundle(config_path="/boot/grub2/grub.cfg", table="gpt", uuid=SUSE_UUID,
                            files={"/boot/grub2/grub.cfg": cfg, "/boot/grub2/grubenv": env})
    t.mkdir("/boot/grub2/i386-pc", "/boot/grub2/themes/openSUSE", "/.snapshots", "/var", "/home", "/usr/local")
    fstab = "".join(f"UUID={SUSE_UUID}  {mnt:<22}  btrfs  {opts:<30}  0  0\n" for mnt, opts in (
        ("/", "defaults"), ("/var", "subvol=/@/var"), ("/usr/local", "subvol=/@/usr/local"),
        ("/home", "subvol=/@/home"), ("/boot/grub2/i386-pc", "subvol=/@/boot/grub2/i386-pc"),
        ("/.snapshots", "subvol=/@/.snapshots"))) + f"UUID={SUSE_SWAP_UUID}  swap  swap  defaults  0  0\n"
    t.os_root(os_release=('NAME="openSUSE Tumbleweed"\n# VERSION="20241005"\nID="opensuse-tumbleweed"\n'
                          'ID_LIKE="opensuse suse"\nVERSION_ID="20241005"\nPRETTY_NAME="openSUSE Tumbleweed"\n'),
              hostname="tumbleweed", fstab=fstab,
              extra={"/etc/default/grub": ("GRUB_DEFAULT=saved\nGRUB_TIMEOUT=8\nGRUB_DISTRIBUTOR=\n"
                                           'GRUB_CMDLINE_LINUX_DEFAULT="splash=silent mitigations=auto quiet '
                                           'security=apparmor"\n'),
                     "/etc/snapper/configs/root": 'SUBVOLUME="/"\nFSTYPE="btrfs"\n'})
    return t


def build_opensuse_tw(guest: GuestBuild) -> list[Path]:
    """openSUSE Tumbleweed: GPT (BIOS boot, btrfs, swap); default subvolume @/.snapshots/1/snapshot.

    Snapshot 2 is the read-only pre-update snapshot (kernels 6.10.5-1 and 6.9.7-1, their own
    initrds and grub.cfg); snapshot 1 is the system now (6.11.0-1 and 6.10.5-1, with the admin's
    ``grub2-set-default`` pinning 6.10.5-1 by title path).
    """
    pinned = f"Advanced options for {SUSE_OS}>{SUSE_OS}, with Linux 6.10.5-1-default"
    now = _suse_root(guest, "snap1", ["6.11.0-1-default", "6.10.5-1-default"], pinned, "now")
    before = _suse_root(guest, "snap2", ["6.10.5-1-default", "6.9.7-1-default"], SUSE_OS, "before")
    home = guest.tree("home", device="hd0,gpt2", prefix="/@/home")
    home.write("/tux/.profile", "# ~/.profile\n")

    def populate(mnt: Path) -> None:
        btrfs = ["btrfs", "-q", "subvolume"]
        run([*btrfs, "create", mnt / "@"])
        run([*btrfs, "create", mnt / "@/.snapshots"])
        for sub in ("home", "var", "usr/local", "boot/grub2/i386-pc"):
            (mnt / "@" / sub).parent.mkdir(parents=True, exist_ok=True)
            run([*btrfs, "create", mnt / "@" / sub])
        copy_tree(home.root, mnt / "@/home")
        (mnt / "@/boot/grub2/i386-pc/README").write_text("the i386-pc GRUB modules live in their own subvolume\n")
        (mnt / "@/.snapshots/1").mkdir()
        (mnt / "@/.snapshots/2").mkdir()
        snap1 = mnt / "@/.snapshots/1/snapshot"
        run([*btrfs, "create", snap1])
        copy_tree(before.root, snap1)  # the system as it was before the kernel update ...
        run([*btrfs, "snapshot", "-r", snap1, mnt / "@/.snapshots/2/snapshot"])  # ... captured by snapper
        for child in snap1.iterdir():  # then the update rewrites snapshot 1
            run(["rm", "-rf", child])
        copy_tree(now.root, snap1)
        (mnt / "@/.snapshots/1/info.xml").write_text(SNAPSHOT_INFO.format(
            type="single", num=1, description="first root filesystem", extra=""))
        (mnt / "@/.snapshots/2/info.xml").write_text(SNAPSHOT_INFO.format(
            type="pre", num=2, description="zypp(zypper)", extra="\n  <cleanup>number</cleanup>"))
        run([*btrfs, "set-default", snap1])

    btrfs_img = mkfs_btrfs_subvols(guest.path("btrfs.img"), 200, uuid=SUSE_UUID, label="", populate=populate,
                                   work=guest.work)
    swap_img = mkfs_swap(guest.path("swap.img"), 8, uuid=SUSE_SWAP_UUID)
    disk = make_gpt(guest.out / "opensuse-tw.img", 220, [
        Partition(1, 8, "EF02", uuid="5E5E5E5E-0001-4F00-8000-0000000000a1"),
        Partition(9, 200, "8300", btrfs_img, uuid="5E5E5E5E-0002-4F00-8000-0000000000a2"),
        Partition(209, 8, "8200", swap_img, uuid="5E5E5E5E-0003-4F00-8000-0000000000a3"),
    ], disk_guid="5E5E5E5E-0000-4F00-8000-0000000000a0")
    return [disk]


# ----------------------------------------------------------------------------- Alpine 3.19

AL_BOOT_UUID = "7c2f3a4b-5d6e-4f70-a819-2a3b4c5d6e7f"
AL_ROOT_UUID = "8d3a4b5c-6e7f-4081-b92a-3b4c5d6e7f80"
AL_SWAP_UUID = "9e4b5c6d-7f80-4192-ca3b-4c5d6e7f8091"
AL_APPEND = f"root=UUID={AL_ROOT_UUID} modules=sd-mod,usb-storage,ext4 quiet rootfstype=ext4"


def build_alpine319(guest: GuestBuild) -> list[Path]:
    """Alpine 3.19 "sys" install: MBR (ext4 /boot, swap, ext4 root), extlinux with MENU DEFAULT on ``virt``."""
    boot = guest.tree("boot", device="hd0,msdos1")
    conf = ("# Generated by update-extlinux 6.04_pre1-r15\nDEFAULT menu.c32\nPROMPT 0\n"
            "MENU TITLE Alpine/Linux Boot Menu\nMENU HIDDEN\nMENU AUTOBOOT Alpine will be booted automatically in # seconds.\n"
            "TIMEOUT 30\n")
    for flavour in ("lts", "virt"):
        boot.kernel(f"/vmlinuz-{flavour}", extras_version=flavour)
        boot.initramfs(f"/initramfs-{flavour}", f"alpine319/{flavour}")
        conf += (f"LABEL {flavour}\n" + ("  MENU DEFAULT\n" if flavour == "virt" else "")
                 + f"  MENU LABEL Linux {flavour}\n  LINUX vmlinuz-{flavour}\n  INITRD initramfs-{flavour}\n"
                 f"  APPEND {AL_APPEND}\n\n")
    conf += "MENU SEPARATOR\n"
    boot.write("/extlinux.conf", conf)
    boot.symlink("/boot", ".")
    boot.write("/README.zoo", "ldlinux.c32/menu.c32 are not shipped in the zoo (extlinux --install writes them)\n")
    boot.mkdir("/lost+found")
    boot_img = mkfs_ext(boot.root, guest.path("boot.img"), 48, kind="ext4", uuid=AL_BOOT_UUID, label="")
    root = guest.tree("root", device="hd0,msdos3")
    root.os_root(os_release=('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.4\n'
                             'PRETTY_NAME="Alpine Linux v3.19"\n'),
                 hostname="alpine", usrmerge=False,
                 fstab=(f"UUID={AL_ROOT_UUID}\t/\text4\trw,relatime 0 1\n"
                        f"UUID={AL_BOOT_UUID}\t/boot\text4\trw,relatime 0 2\n"
                        f"UUID={AL_SWAP_UUID}\tswap\tswap\tdefaults\t0 0\n"),
                 extra={"/etc/alpine-release": "3.19.4\n",
                        "/etc/update-extlinux.conf": ("overwrite=1\nvesa_menu=0\ndefault_kernel_opts=\"quiet\"\n"
                                                      "modules=sd-mod,usb-storage,ext4\nroot=UUID=" + AL_ROOT_UUID
                                                      + "\nverbose=0\nhidden=1\ntimeout=3\ndefault=virt\n")})
    root_img = mkfs_ext(root.root, guest.path("root.img"), 24, kind="ext4", uuid=AL_ROOT_UUID, label="")
    swap_img = mkfs_swap(guest.path("swap.img"), 8, uuid=AL_SWAP_UUID)
    disk = make_mbr(guest.out / "alpine319.img", 82, [
        Partition(1, 48, "83", boot_img, bootable=True),
        Partition(49, 8, "82", swap_img),
        Partition(57, 24, "83", root_img),
    ], label_id="0xa1b3c519")
    return [disk]


# ----------------------------------------------------------------------------- Arch (systemd-boot)

ARCH_ROOT_UUID = "a05c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c8d"
ARCH_ROOT_PARTUUID = "a05c6d7e-0002-4a1b-8c2d-000000000002"


def build_arch(guest: GuestBuild) -> list[Path]:
    """Arch Linux: GPT (FAT32 ESP mounted at /boot, ext4 root), systemd-boot, default ``arch-lts.conf``."""
    esp = guest.tree("esp", device="hd0,gpt1")
    esp.microcode("/intel-ucode.img")
    for pkg in ("linux", "linux-lts"):
        esp.kernel(f"/vmlinuz-{pkg}")
        esp.initramfs(f"/initramfs-{pkg}.img", f"arch/{pkg}", mode=0o600)
        esp.initramfs(f"/initramfs-{pkg}-fallback.img", f"arch/{pkg}-fallback", mode=0o600)
    options = f"root=PARTUUID={ARCH_ROOT_PARTUUID} rw loglevel=3 quiet"
    esp.write("/loader/loader.conf", "default  arch-lts.conf\ntimeout  4\nconsole-mode max\neditor   no\n")
    for name, title, pkg, initramfs in (
        ("arch", "Arch Linux", "linux", "initramfs-linux.img"),
        ("arch-fallback", "Arch Linux (fallback initramfs)", "linux", "initramfs-linux-fallback.img"),
        ("arch-lts", "Arch Linux (linux-lts)", "linux-lts", "initramfs-linux-lts.img"),
    ):
        esp.write(f"/loader/entries/{name}.conf", f"title   {title}\nlinux   /vmlinuz-{pkg}\n"
                                                  f"initrd  /intel-ucode.img\ninitrd  /{initramfs}\n"
                                                  f"options {options}\n")
    esp.write("/loader/entries.srel", "type1\n")
    esp.write("/EFI/systemd/README.txt", "placeholder: systemd-bootx64.efi is not shipped in the zoo\n")
    esp.write("/EFI/BOOT/README.txt", "placeholder: BOOTX64.EFI is not shipped in the zoo\n")
    esp_img = mkfs_vfat(esp.root, guest.path("esp.img"), 64, fat=32, volid="A05CE5B0", label="", options=["-s", "1"])
    root = guest.tree("root", device="hd0,gpt2")
    root.os_root(os_release=('NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n'
                             "ANSI_COLOR=\"38;2;23;147;209\"\n"),
                 hostname="archlinux", machine_id="a05c6d7e8f904a1b8c2d3e4f5a6b7c8d",
                 fstab=(f"# /dev/xvda2\nUUID={ARCH_ROOT_UUID}\t/         \text4      \trw,relatime\t0 1\n\n"
                        "# /dev/xvda1\nUUID=A05C-E5B0      \t/boot     \tvfat      \trw,relatime,fmask=0022,"
                        "dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro\t0 2\n"),
                 extra={"/etc/arch-release": ""})
    root_img = mkfs_ext(root.root, guest.path("root.img"), 32, kind="ext4", uuid=ARCH_ROOT_UUID, label="")
    disk = make_gpt(guest.out / "arch.img", 98, [
        Partition(1, 64, "EF00", esp_img, uuid="A05C6D7E-0001-4A1B-8C2D-000000000001"),
        Partition(65, 32, "8304", root_img, uuid=ARCH_ROOT_PARTUUID.upper()),
    ], disk_guid="A05C6D7E-0000-4A1B-8C2D-000000000000")
    return [disk]
