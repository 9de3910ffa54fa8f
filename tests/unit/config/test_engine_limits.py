"""One hostile input per Limits field the non-GRUB-2 engines use; each must end in LimitExceeded, fast."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from enginekit import guest

from virtkit.boot.config.extlinux import load_extlinux_menu
from virtkit.boot.config.grub_legacy import load_grub_legacy_menu
from virtkit.boot.config.lilo import load_lilo_menu
from virtkit.boot.config.model import BootMenu
from virtkit.boot.config.sdboot import load_sdboot_menu
from virtkit.errors import LimitExceeded
from virtkit.limits import Limits

D = "hd0"
Loader = Callable[..., BootMenu]


def run(loader: Loader, tree: dict[str, str | bytes], path: str, limits: Limits) -> BootMenu:
    return loader(guest({D: tree}, hd0={"fs_type": "vfat"}), D, path, limits=limits)


CASES = [
    # (id, loader, tree, config path, limits, limit name)
    ("legacy-config-bytes", load_grub_legacy_menu, {"/m.lst": "#" * 5000}, "/m.lst", Limits(max_config_bytes=4096),
     "max_config_bytes"),
    ("legacy-menu-entries", load_grub_legacy_menu, {"/m.lst": "title t\nkernel /k\n" * 50}, "/m.lst",
     Limits(max_menu_entries=20), "max_menu_entries"),
    ("legacy-script-steps", load_grub_legacy_menu, {"/m.lst": "timeout 1\n" * 500}, "/m.lst",
     Limits(max_script_steps=100), "max_script_steps"),
    ("extlinux-config-bytes", load_extlinux_menu, {"/e.conf": "#" * 5000}, "/e.conf", Limits(max_config_bytes=4096),
     "max_config_bytes"),
    ("extlinux-included-file-bytes", load_extlinux_menu, {"/e.conf": "INCLUDE big.cfg\n", "/big.cfg": "#" * 5000},
     "/e.conf", Limits(max_config_bytes=4096), "max_config_bytes"),
    ("extlinux-include-depth", load_extlinux_menu, {f"/c{i}.cfg": f"INCLUDE c{i + 1}.cfg\n" for i in range(40)},
     "/c0.cfg", Limits(max_include_depth=8), "max_include_depth"),
    # Not a loop: one file included 200 times, each time 200 lines -> 40,000 lines, over the step budget.
    ("extlinux-include-fanout-steps", load_extlinux_menu,
     {"/e.conf": "INCLUDE b.cfg\n" * 200, "/b.cfg": "SAY x\n" * 200}, "/e.conf", Limits(max_script_steps=10_000),
     "max_script_steps"),
    ("extlinux-menu-entries", load_extlinux_menu, {"/e.conf": "LABEL a\n KERNEL k\n" * 50}, "/e.conf",
     Limits(max_menu_entries=20), "max_menu_entries"),
    ("extlinux-submenus-count", load_extlinux_menu, {"/e.conf": "MENU BEGIN x\n" * 50}, "/e.conf",
     Limits(max_menu_entries=20), "max_menu_entries"),
    ("lilo-config-bytes", load_lilo_menu, {"/l.conf": "#" * 5000}, "/l.conf", Limits(max_config_bytes=4096),
     "max_config_bytes"),
    ("lilo-menu-entries", load_lilo_menu, {"/l.conf": "image=/k\n" * 50}, "/l.conf", Limits(max_menu_entries=20),
     "max_menu_entries"),
    ("lilo-script-steps", load_lilo_menu, {"/l.conf": "compact\n" * 500}, "/l.conf", Limits(max_script_steps=100),
     "max_script_steps"),
    ("sdboot-loader-conf-bytes", load_sdboot_menu, {"/loader/loader.conf": "#" * 5000}, "/loader/loader.conf",
     Limits(max_config_bytes=4096), "max_config_bytes"),
    ("sdboot-entry-bytes", load_sdboot_menu, {"/loader/entries/a.conf": "#" * 5000, "/loader/loader.conf": ""},
     "/loader/loader.conf", Limits(max_config_bytes=4096), "max_config_bytes"),
    ("sdboot-menu-entries", load_sdboot_menu,
     {**{f"/loader/entries/e{i}.conf": "linux /k\n" for i in range(50)}, "/k": ""}, "/loader/loader.conf",
     Limits(max_menu_entries=20), "max_menu_entries"),
    ("sdboot-script-steps", load_sdboot_menu, {"/loader/loader.conf": "timeout 1\n" * 500}, "/loader/loader.conf",
     Limits(max_script_steps=100), "max_script_steps"),
]


@pytest.mark.parametrize(("loader", "tree", "path", "limits", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_hits_its_limit(loader: Loader, tree: dict[str, str | bytes], path: str, limits: Limits,
                                      name: str) -> None:
    with pytest.raises(LimitExceeded) as exc:
        run(loader, tree, path, limits)
    assert exc.value.name == name
    assert f"(raise it with --limit {name}=N)" in str(exc.value)


@pytest.mark.parametrize(("loader", "tree", "path"), [
    (load_grub_legacy_menu, {"/m.lst": "default 99999999999999999999\ntimeout 99999999999\nfallback "
                             + " ".join(str(i) for i in range(100)) + "\ntitle a\nkernel /k\n"}, "/m.lst"),
    (load_extlinux_menu, {"/e.conf": "TIMEOUT 99999999999999999999\nTOTALTIMEOUT -5\nIPAPPEND 0xffffffffffffffff\n"
                          "MENU INDENT 999999999999\nDEFAULT a\nLABEL a\n KERNEL k\n"}, "/e.conf"),
    (load_lilo_menu, {"/l.conf": "prompt\ntimeout=99999999999999\ndelay=-3\nimage=/k\n"}, "/l.conf"),
    (load_sdboot_menu, {"/loader/loader.conf": "timeout 99999999999999999999999\n",
                        "/loader/entries/a+99999999999999999999-1.conf": "linux /k\n", "/k": ""}, "/loader/loader.conf"),
])
def test_absurd_numbers_are_harmless(loader: Loader, tree: dict[str, str | bytes], path: str) -> None:
    menu = run(loader, tree, path, Limits())
    assert menu.items  # parsed; the absurd numbers were refused or clamped, never crashed
