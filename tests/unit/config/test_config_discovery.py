"""Config discovery, the preference order, forced configs, the whole-guest loader and entry editing."""

from __future__ import annotations

import pytest
from enginekit import guest

from virtkit.boot.config import (
    MenuOptions,
    candidate_for,
    discover_menu,
    evaluate_edited_entry,
    find_boot_configs,
    load_config_file,
    load_guest_menu,
    parse_config_spec,
)
from virtkit.boot.config.model import EntryKind
from virtkit.errors import ConfigError, FileNotFound, LimitExceeded, SelectionError, UsageError
from virtkit.limits import Limits

L = Limits()
STUB = "search.fs_uuid 0d1c root hd0,gpt2\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"
REAL = "menuentry 'Debian' {\n linux /vmlinuz\n}\n"
LEGACY = "title A\nkernel /vmlinuz ro\n"


def found(files: object, **kw: object) -> list[tuple[str, str, str, int]]:
    return [(c.loader, c.device, c.path, c.rank) for c in find_boot_configs(files, limits=L, **kw)]  # type: ignore[arg-type]


def test_every_location_on_one_device_in_preference_order() -> None:
    tree = {p: "x" for p in (
        "/boot/grub/grub.cfg", "/grub2/grub.cfg", "/boot/extlinux/extlinux.conf", "/syslinux.cfg",
        "/boot/grub/menu.lst", "/grub/grub.conf", "/etc/lilo.conf", "/loader/loader.conf", "/loader/entries/a.conf")}
    assert found(guest({"hd0": tree})) == [
        ("grub2", "hd0", "/boot/grub/grub.cfg", 10), ("grub2", "hd0", "/grub2/grub.cfg", 10),
        ("extlinux", "hd0", "/boot/extlinux/extlinux.conf", 30), ("extlinux", "hd0", "/syslinux.cfg", 30),
        ("grub-legacy", "hd0", "/boot/grub/menu.lst", 40), ("grub-legacy", "hd0", "/grub/grub.conf", 40),
        ("lilo", "hd0", "/etc/lilo.conf", 50), ("systemd-boot", "hd0", "/loader/loader.conf", 60),
    ]


def test_rank_beats_device_order_and_device_order_breaks_ties() -> None:
    files = guest({"hd0,msdos1": {"/grub/menu.lst": LEGACY}, "hd0,msdos2": {"/boot/grub/grub.cfg": REAL},
                   "hd1": {"/grub/grub.cfg": REAL}})
    assert [c[:3] for c in found(files)] == [
        ("grub2", "hd0,msdos2", "/boot/grub/grub.cfg"), ("grub2", "hd1", "/grub/grub.cfg"),
        ("grub-legacy", "hd0,msdos1", "/grub/menu.lst")]


def test_efi_stub_last_real_esp_config_ranked_by_platform() -> None:
    files = guest({"hd0,gpt1": {"/EFI/debian/grub.cfg": STUB, "/EFI/fedora/grub.cfg": REAL, "/EFI/BOOT/grub.cfg": STUB},
                   "hd0,gpt2": {"/boot/grub/grub.cfg": REAL}})
    assert found(files) == [
        ("grub2", "hd0,gpt2", "/boot/grub/grub.cfg", 10), ("grub2", "hd0,gpt1", "/EFI/fedora/grub.cfg", 20),
        ("grub2", "hd0,gpt1", "/EFI/debian/grub.cfg", 90), ("grub2", "hd0,gpt1", "/EFI/BOOT/grub.cfg", 90)]
    efi = find_boot_configs(files, limits=L, platform="efi")
    assert [(c.path, c.rank, c.platform, c.stub) for c in efi] == [
        ("/EFI/fedora/grub.cfg", 5, "efi", False), ("/boot/grub/grub.cfg", 10, None, False),
        ("/EFI/debian/grub.cfg", 90, "efi", True), ("/EFI/BOOT/grub.cfg", 90, "efi", True)]


def test_efi_under_boot_efi_and_lower_case() -> None:
    files = guest({"hd0": {"/boot/efi/EFI/ubuntu/grub.cfg": STUB, "/efi/arch/GRUB.CFG": REAL}})
    assert [c[2] for c in found(files)] == ["/efi/arch/GRUB.CFG", "/boot/efi/EFI/ubuntu/grub.cfg"]


def test_btrfs_subvolumes() -> None:
    tree = {"/@/.snapshots/1/snapshot/boot/grub2/grub.cfg": REAL, "/@/boot/grub2/grub.cfg": REAL,
            "/root/boot/grub2/grub.cfg": REAL}
    files = guest({"hd0,gpt2": tree}, hd0_gpt2={"fs_type": "btrfs", "default_subvolume": "@/.snapshots/1/snapshot"})
    cands = find_boot_configs(files, limits=L)
    assert [(c.path, c.rank) for c in cands] == [
        ("/@/.snapshots/1/snapshot/boot/grub2/grub.cfg", 15), ("/@/boot/grub2/grub.cfg", 15),
        ("/root/boot/grub2/grub.cfg", 15)]
    assert cands[0].why == "GRUB 2 configuration in btrfs the default subvolume"
    assert found(guest({"hd0": tree})) == []  # not btrfs: subvolume paths are not searched


def test_bls_directory_without_loader_conf() -> None:
    files = guest({"hd0,msdos1": {"/loader/entries/x.conf": "title X\nlinux /k\n", "/grub2/grub.cfg": "blscfg\n"}})
    assert found(files) == [("grub2", "hd0,msdos1", "/grub2/grub.cfg", 10),
                            ("systemd-boot", "hd0,msdos1", "/loader/entries", 70)]


def test_bls_directory_under_boot_on_a_root_filesystem() -> None:
    entry = "title F\nlinux /boot/vmlinuz-6.5\ninitrd /boot/initramfs-6.5.img\noptions root=/dev/vda1\n"
    files = guest({"hd0,msdos1": {"/boot/loader/entries/f-6.5.conf": entry, "/boot/vmlinuz-6.5": "k",
                                  "/boot/initramfs-6.5.img": "i", "/etc/fstab": ""}})
    assert found(files) == [("systemd-boot", "hd0,msdos1", "/boot/loader/entries", 70)]
    gm = discover_menu(files, limits=L)
    entry0 = gm.menu.items[0]
    assert gm.menu.config.path == "/boot/loader/entries"
    assert entry0.kernel is not None and entry0.kernel.display() == "(hd0,msdos1)/boot/vmlinuz-6.5"  # type: ignore[union-attr]
    assert entry0.cmdline == "initrd=\\boot\\initramfs-6.5.img root=/dev/vda1"  # type: ignore[union-attr]  # as systemd-boot passes it
    with_conf = guest({"hd0": {"/boot/loader/loader.conf": "default f*\n", "/boot/loader/entries/f.conf": entry,
                               "/boot/vmlinuz-6.5": "k"}})
    assert found(with_conf) == [("systemd-boot", "hd0", "/boot/loader/loader.conf", 60)]
    assert candidate_for(with_conf, "hd0", "/boot/loader/entries", limits=L).path == "/boot/loader/entries"
    assert candidate_for(with_conf, "hd0", "/boot/loader", limits=L).path == "/boot/loader/loader.conf"


def test_nothing_found() -> None:
    assert found(guest({"hd0": {"/etc/fstab": ""}})) == []
    with pytest.raises(ConfigError, match=r"no boot-loader configuration found on the guest's filesystems \(\(hd0\) \?\)"):
        discover_menu(guest({"hd0": {"/etc/fstab": ""}}), limits=L)


# ----------------------------------------------------------------------------- forced configs


@pytest.mark.parametrize(("path", "text", "loader"), [
    ("/x/menu.lst", "junk", "grub-legacy"), ("/x/grub.conf", "", "grub-legacy"), ("/x/extlinux.conf", "", "extlinux"),
    ("/x/isolinux.cfg", "", "extlinux"), ("/x/lilo.conf", "", "lilo"), ("/loader/loader.conf", "", "systemd-boot"),
    ("/x/grub.cfg", "", "grub2"), ("/x/custom", "title A\nkernel /k\n", "grub-legacy"),
    ("/x/custom", "LABEL a\n KERNEL k\n", "extlinux"), ("/x/custom", "image=/k\n label=a\n", "lilo"),
    ("/x/custom", "menuentry 'a' {\n linux /k\n}\n", "grub2"), ("/x/custom", "title A\nlinux /k\noptions q\n", "systemd-boot"),
])
def test_candidate_for(path: str, text: str, loader: str) -> None:
    assert candidate_for(guest({"hd0": {path: text}}), "hd0", path, limits=L).loader == loader


def test_candidate_for_directories_and_errors() -> None:
    files = guest({"hd0": {"/loader/entries/a.conf": "x", "/etc/motd": "hello world\n"}})
    assert candidate_for(files, "hd0", "/loader/entries", limits=L).path == "/loader/entries"
    assert candidate_for(files, "hd0", "/loader", limits=L).path == "/loader/loader.conf"
    with pytest.raises(ConfigError, match=r"not recognisable as a boot-loader configuration \(confidence: "):
        candidate_for(files, "hd0", "/etc/motd", limits=L)
    with pytest.raises(FileNotFound, match="no such configuration file"):
        candidate_for(files, "hd0", "/nope", limits=L)


@pytest.mark.parametrize(("spec", "expected"), [
    ("hd0,msdos1:/grub/menu.lst", ("hd0,msdos1", "/grub/menu.lst")), ("(hd0,1)/grub/menu.lst", ("hd0,msdos1", "/grub/menu.lst")),
    ("hd0,1:grub/menu.lst", ("hd0,msdos1", "/grub/menu.lst")), ("/etc/lilo.conf", ("hd0,msdos2", "/etc/lilo.conf")),
])
def test_parse_config_spec(spec: str, expected: tuple[str, str]) -> None:
    files = guest({"hd0,msdos1": {"/grub/menu.lst": ""}, "hd0,msdos2": {"/etc/lilo.conf": ""}},
                  hd0_msdos1={"aliases": ("hd0,1",)})
    assert parse_config_spec(files, spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("hd9:/x", "no device 'hd9'"), ("(hd9)/x", r"no device \(hd9\)"), ("/nowhere", "no device has /nowhere"),
])
def test_parse_config_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_config_spec(guest({"hd0": {"/a": ""}}), spec)


# ----------------------------------------------------------------------------- whole guest


def test_forced_config_wins_over_discovery() -> None:
    files = guest({"hd0": {"/boot/grub/menu.lst": LEGACY, "/boot/extlinux/extlinux.conf": "DEFAULT a\nLABEL a\n KERNEL k\n",
                           "/vmlinuz": ""}})
    assert discover_menu(files, limits=L).used.loader == "extlinux"
    gm = discover_menu(files, limits=L, config="hd0:/boot/grub/menu.lst")
    assert (gm.used.loader, gm.menu.loader, gm.candidates) == ("grub-legacy", "grub-legacy", (gm.used,))


def test_unusable_or_empty_configs_fall_through() -> None:
    files = guest({"hd0": {"/boot/extlinux/extlinux.conf": "INCLUDE a.cfg\n", "/boot/extlinux/a.cfg": "INCLUDE a.cfg\n",
                           "/boot/grub/menu.lst": "timeout 3\n", "/etc/lilo.conf": "image=/vmlinuz\n", "/vmlinuz": ""}})
    gm = discover_menu(files, limits=L)
    assert gm.used.loader == "lilo"
    assert gm.menu.warnings[:2] == (
        "(hd0)/boot/extlinux/extlinux.conf (extlinux) could not be used: (hd0)/boot/extlinux/a.cfg:1:1: INCLUDE loop: "
        "/boot/extlinux/extlinux.conf -> /boot/extlinux/a.cfg -> /boot/extlinux/a.cfg (syslinux would recurse until it crashes)",
        "(hd0)/boot/grub/menu.lst (grub-legacy) has no menu entries; tried the next configuration")


def test_all_empty_returns_the_first_empty_menu() -> None:
    gm = discover_menu(guest({"hd0": {"/boot/grub/menu.lst": "timeout 1\n", "/grub/grub.conf": "timeout 2\n"}}), limits=L)
    assert (gm.used.path, gm.menu.items, gm.menu.timeout) == ("/boot/grub/menu.lst", (), 1.0)


def test_limits_are_never_papered_over() -> None:
    files = guest({"hd0": {"/boot/extlinux/extlinux.conf": "x" * 100, "/etc/lilo.conf": "image=/vmlinuz\n"}})
    with pytest.raises(LimitExceeded, match="max_config_bytes"):
        discover_menu(files, limits=Limits(max_config_bytes=50))


@pytest.mark.parametrize(("opts", "message"), [
    (MenuOptions(platform="arm"), "--platform arm: expected one of pc, xen, efi"),
    (MenuOptions(flavour="suse"), "--flavour suse: expected one of upstream, fedora"),
])
def test_bad_options(opts: MenuOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        discover_menu(guest({"hd0": {"/grub/menu.lst": LEGACY}}), limits=L, options=opts)


def test_load_guest_menu_and_config_file() -> None:
    files = guest({"hd0": {"/grub/menu.lst": LEGACY, "/vmlinuz": ""}})
    assert load_guest_menu(files, limits=L, config="/grub/menu.lst").items[0].title == "A"
    menu = load_config_file("/tmp/extlinux.conf", b"DEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND ro\n", limits=L)
    assert (menu.loader, menu.config.device, menu.items[0].kernel.display(), menu.default) == (  # type: ignore[union-attr]
        "extlinux", "host", "(host)/tmp/vmlinuz", (0,))
    with pytest.raises(LimitExceeded):
        load_config_file("/x/menu.lst", b"x" * 20, limits=Limits(max_config_bytes=10))


# ----------------------------------------------------------------------------- editing


def test_edit_grub_legacy_entry() -> None:
    files = guest({"hd0,msdos1": {"/grub/menu.lst": LEGACY, "/vmlinuz": "", "/vmlinuz-new": "", "/initrd": ""}})
    menu = load_guest_menu(files, limits=L)
    assert menu.items[0].body == "kernel /vmlinuz ro"
    e = evaluate_edited_entry(files, menu, (0,), "kernel /vmlinuz-new ro single\ninitrd /initrd\n", limits=L)
    assert (e.title, e.kernel.path, [r.path for r in e.initrds], e.cmdline) == (  # type: ignore[union-attr]
        "A", "/vmlinuz-new", ["/initrd"], "ro single")


def test_edit_extlinux_entry_is_its_command_line() -> None:
    files = guest({"hd0": {"/extlinux.conf": "DEFAULT a\nLABEL a\n KERNEL vmlinuz\n APPEND ro\n", "/vmlinuz": "", "/i": ""}})
    menu = load_guest_menu(files, limits=L)
    assert menu.items[0].body == "vmlinuz ro"
    e = evaluate_edited_entry(files, menu, (0,), "vmlinuz ro single initrd=i", limits=L)
    assert (e.id, e.cmdline, [r.path for r in e.initrds]) == ("a", "ro single initrd=i", ["/i"])


def test_edit_lilo_section() -> None:
    files = guest({"hd0": {"/etc/lilo.conf": 'image=/vmlinuz\n label="My Linux"\n append="a b"\n', "/vmlinuz": ""}})
    menu = load_guest_menu(files, limits=L)
    assert menu.items[0].body == 'image=/vmlinuz\n    label="My Linux"\n    append="a b"'
    e = evaluate_edited_entry(files, menu, (0,), menu.items[0].body.replace("a b", "c"), limits=L)
    assert (e.title, e.cmdline) == ("My Linux", "c")


def test_edit_sdboot_entry() -> None:
    files = guest({"hd0": {"/loader/loader.conf": "", "/loader/entries/a.conf": "title A\nlinux /k\noptions x\n", "/k": ""}})
    menu = load_guest_menu(files, limits=L)
    e = evaluate_edited_entry(files, menu, (0,), menu.items[0].body.replace("options x", "options y"), limits=L)
    assert (e.id, e.title, e.cmdline, e.kind) == ("a.conf", "A", "y", EntryKind.LINUX)


def test_edit_errors() -> None:
    files = guest({"hd0": {"/grub/menu.lst": LEGACY}})
    menu = load_guest_menu(files, limits=L)
    with pytest.raises(SelectionError, match="no menu entry at 3"):
        evaluate_edited_entry(files, menu, (3,), "", limits=L)
    with pytest.raises(LimitExceeded, match="max_config_bytes"):
        evaluate_edited_entry(files, menu, (0,), "x" * 100, limits=Limits(max_config_bytes=10))
