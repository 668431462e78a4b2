"""The vendored uPlot files are exactly the ones scripts/vendor-ui pins: a hand edit, or an
upgrade that forgot to update the pins, fails here without any network."""

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vendor-ui"
VENDOR = ROOT / "app" / "ui" / "static" / "vendor" / "uplot"
PIN = re.compile(r'^\s*"([0-9a-f]{64})  ([\w.-]+)"\s*$')


def pins() -> dict[str, str]:
    found = {}
    for line in SCRIPT.read_text().splitlines():
        if match := PIN.match(line):
            found[match.group(2)] = match.group(1)
    return found


def test_the_script_pins_the_module_the_stylesheet_and_the_license() -> None:
    assert set(pins()) == {"uPlot.esm.js", "uPlot.min.css", "LICENSE"}
    assert re.search(r"^UPLOT=1\.6\.\d+$", SCRIPT.read_text(), re.MULTILINE)


def test_every_vendored_file_matches_its_pinned_sha256() -> None:
    for name, digest in pins().items():
        body = (VENDOR / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest, f"{name} differs from its pin"


def test_nothing_else_is_vendored_and_the_license_is_kept() -> None:
    assert {p.name for p in VENDOR.iterdir()} == set(pins())
    assert "MIT License" in (VENDOR / "LICENSE").read_text()
