"""The isolation demo: one busybox bundle, run under runc and under runsc-py side by side.

    python3 -m runsc_py.demo
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from runsc_py.bundle import build_busybox_rootfs, write_config

SCRIPT = "uname -a; hostname; ps"


def _run(cmd: list[str]) -> list[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines() + [f"! {line}" for line in r.stderr.splitlines()]
    return lines + [f"(exit {r.returncode})"]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="runsc-py-demo-") as tmp:
        bundle = Path(tmp)
        build_busybox_rootfs(bundle / "rootfs")
        write_config(bundle, ["sh", "-c", SCRIPT], hostname="demo-sandbox")
        cid = "demo-" + uuid.uuid4().hex[:8]
        columns = {}
        if shutil.which("runc"):
            columns["runc"] = _run(["runc", "--root", f"{tmp}/runc", "run", "--bundle",
                                    str(bundle), cid])
        columns["runsc-py"] = _run([sys.executable, "-m", "runsc_py.cli", "--root",
                                    f"{tmp}/runsc-py", "run", "--bundle", str(bundle), cid])
        print(f"$ {SCRIPT}    (hostname demo-sandbox, busybox bundle in {bundle})\n")
        print("host: " + subprocess.run(["uname", "-a"], capture_output=True,
                                        text=True).stdout.strip() + "\n")
        width = max(len(line) for lines in columns.values() for line in lines) + 4
        print("".join(name.ljust(width) for name in columns).rstrip())
        print("".join(("-" * (width - 4)).ljust(width) for _ in columns).rstrip())
        for row in range(max(len(lines) for lines in columns.values())):
            print("".join((lines[row] if row < len(lines) else "").ljust(width)
                          for lines in columns.values()).rstrip())
        return 0 if columns["runsc-py"][-1] == "(exit 0)" else 1


if __name__ == "__main__":
    sys.exit(main())
