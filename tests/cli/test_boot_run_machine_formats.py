"""`virtkit boot` (the default action) with a machine format prints only that format.

The human menu tree comes first only with ``--format text``: ``virtkit boot --format json``
must be parseable as it stands (issue 7 calls it exactly so).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import run_cli as _run


def test_default_action_json_is_only_json(capfd: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(["boot", "--format", "json", "--no-isolate"], capfd)  # the bundled sample
    assert status == 0, err
    doc = json.loads(out)  # nothing but the JSON document on stdout
    try:
        assert doc["schema_version"] == 1 and doc["kernel"] and doc["entry"]["kernel"]
        assert os.path.getsize(doc["kernel"]) > 0
    finally:
        shutil.rmtree(os.path.dirname(doc["kernel"]), ignore_errors=True)


def test_default_action_text_shows_the_tree_first(capfd: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(["boot", "--no-isolate"], capfd)
    assert status == 0, err
    assert out.startswith("grub2 menu from (hd0,gpt3)/grub/grub.cfg\n")  # the menu tree for people first
    assert "\nextracted [1>2] 'Debian GNU/Linux, with Linux 5.10.0-30-amd64'\n" in out
    for line in out.splitlines():
        if "/boot_kernel." in line:
            path = line.split()[-1]
            if os.path.isabs(path) and os.path.exists(path):
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)
