"""Building small OCI bundles from Debian's busybox-static (the demo, tests and bench)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from runsc_py import spec

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str:
    found = shutil.which("busybox") or next(
        (p for p in BUSYBOX_PATHS if Path(p).exists()), None)
    if not found:
        raise FileNotFoundError("busybox is not installed (Debian package busybox-static)")
    return found


def build_busybox_rootfs(root: Path, extra_binaries: dict[str, Path] | None = None) -> Path:
    """A minimal rootfs: busybox and its applets in /bin, /etc/passwd, empty mount points."""
    busybox = find_busybox()
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy(busybox, root / "bin" / "busybox")
    for name, src in (extra_binaries or {}).items():
        shutil.copy(src, root / "bin" / name)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "user:x:1000:1000:user:/home:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    return root


def write_config(bundle: Path, args: list[str], **top) -> dict:
    """config.json: the default spec, not a terminal, with args and top-level overrides."""
    doc = spec.default_spec()
    doc["process"]["terminal"] = False
    doc["process"]["args"] = args
    doc.update(top)
    (bundle / "config.json").write_text(json.dumps(doc, indent=1))
    return doc
