"""The OCI runtime spec's features, each run under runc and runsc-py: what the container
sees must agree (issue 12)."""
from __future__ import annotations

SCRIPT = r"""
cat /etc/masked-file; echo "read masked file: $?"
echo "masked dir lists $(ls -A /etc/masked-dir | wc -l) entries"
stat -c '%F %a' /etc/masked-file /etc/masked-dir /etc/via-link
cat /etc/via-link; echo "read through a link to it: $?"
echo x > /etc/masked-file; echo "write masked file: $?"
touch /etc/masked-dir/new 2>&1; echo "create in masked dir: $?"
cat /ro-dir/kept; touch /ro-dir/new 2>&1; echo "create in read-only dir: $?"
echo y >> /ro-dir/kept 2>&1; echo "append to read-only file: $?"
echo z > /ro-file 2>&1; echo "write read-only file: $?"
touch /ro-dir/sub/new 2>&1; echo "create below a read-only dir: $?"
touch /rw-dir/new; echo "create in writable dir: $?"
echo "meminfo: $(wc -c < /proc/meminfo) bytes"
echo "kcore: $(cat /proc/kcore 2>&1 | wc -c)"
"""


def _bundle(make_bundle):
    b = make_bundle("sh", "-c", SCRIPT, readonly=False)
    etc = b.rootfs / "etc"
    (etc / "masked-dir").mkdir()
    (etc / "masked-dir" / "secret").write_text("secret\n")
    (etc / "masked-file").write_text("secret\n")
    (etc / "via-link").symlink_to("masked-file")
    (b.rootfs / "ro-dir" / "sub").mkdir(parents=True)
    (b.rootfs / "ro-dir" / "kept").write_text("kept\n")
    (b.rootfs / "ro-file").write_text("ro\n")
    (b.rootfs / "rw-dir").mkdir()
    b.spec["linux"]["maskedPaths"] = ["/etc/masked-dir", "/etc/masked-file", "/no/such",
                                      "/proc/meminfo", "/proc/kcore"]
    b.spec["linux"]["readonlyPaths"] = ["/ro-dir", "/ro-file", "/no/such/either", "/proc/sys"]
    return b.write()


def test_masked_and_readonly_paths_as_runc(runsc, runc, make_bundle):
    bundle = _bundle(make_bundle)
    theirs = runc(bundle)
    assert theirs.returncode == 0, theirs.stderr
    ours = runsc.run(bundle)
    assert ours.returncode == 0, ours.stderr
    assert "read masked file: 0" in theirs.stdout and "secret" not in theirs.stdout
    assert "create in read-only dir: 1" in theirs.stdout
    assert ours.stdout == theirs.stdout


def test_masked_paths_must_be_absolute(runsc, make_bundle):
    bundle = make_bundle("true")
    bundle.spec["linux"]["maskedPaths"] = ["etc/passwd"]
    r = runsc.run(bundle.write())
    assert r.returncode == 1
    assert r.stderr == ("runsc-py: config.json: linux.maskedPaths[0] must be an absolute "
                        "path\n")
