"""What tests/test_cri.py needs around containerd's CRI plugin: the CRI stubs generated
from tests/cri/runtime_v1.proto, OCI image tarballs built from busybox-static (no
registry), and a private containerd with its CRI plugin on, configured with the runtime
handler and RuntimeClass that README.md shows (read from it, so the README is what runs)."""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO = REPO / "tests" / "cri" / "runtime_v1.proto"
K8S_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin keeps its images in


def load_stubs(out: Path):
    """runtime_v1_pb2 and runtime_v1_pb2_grpc, generated into out by grpc_tools.protoc."""
    from grpc_tools import protoc
    include = str(Path(importlib.import_module("grpc_tools").__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO}: {rc}")
    sys.path.insert(0, str(out))
    try:
        return (importlib.import_module("runtime_v1_pb2"),
                importlib.import_module("runtime_v1_pb2_grpc"))
    finally:
        sys.path.remove(str(out))


def _blob(blobs: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def oci_image_tar(rootfs: Path, name: str, out: Path, entrypoint: list[str],
                  cmd: list[str] | None = None) -> Path:
    """An OCI image layout in a tarball (what `ctr images import` reads): one
    uncompressed layer holding rootfs, and the image name as containerd's annotation."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = Path(tmp)
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(rootfs.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        layer = buf.getvalue()
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = {
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                               "/sbin:/bin"],
                       "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _blob(blobs, json.dumps(config).encode(),
                            "application/vnd.oci.image.config.v1+json"),
            "layers": [_blob(blobs, layer, "application/vnd.oci.image.layer.v1.tar")],
        }
        desc = _blob(blobs, json.dumps(manifest).encode(), manifest["mediaType"])
        desc["annotations"] = {"io.containerd.image.name": name,
                               "org.opencontainers.image.ref.name": name.rpartition(":")[2]}
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                       "manifests": [desc]}))
        (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        with tarfile.open(out, "w") as tar:
            for path in sorted(layout.rglob("*")):
                tar.add(str(path), arcname=str(path.relative_to(layout)), recursive=False)
    return out


def readme_block(lang: str, marker: str) -> str:
    """The first ```lang block of README.md after the line containing marker."""
    text = (REPO / "README.md").read_text()
    at = text.index(marker)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, at)
    assert m, f"README.md has no ```{lang} block after {marker!r}"
    return m.group(1)


def containerd_config(base: str, binary: str, pause_image: str) -> str:
    """A private containerd with the CRI plugin on: its own root, state and sockets, CNI
    from base/cni (the loopback plugin only), the README's runsc-py handler with BinaryName
    the checkout under test, and runc's handler beside it."""
    handler = readme_block("toml", "<!-- cri-handler")
    handler, n = re.subn(r'BinaryName = "[^"]*"', f'BinaryName = "{binary}"', handler)
    assert n == 1, handler
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The kubelet asks for oom_score_adj -998 for the pod sandbox; lowering it needs
  # CAP_SYS_RESOURCE, which the test machines do not give root (runc fails as runsc-py
  # does without this). containerd's setting for that: never below its own value.
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{base}/cni-bin"
  conf_dir = "{base}/cni"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{handler}"""


def cni_setup(base: str) -> None:
    """The pod network: Debian's loopback plugin, then tests/cri/dummy-eth0 (an "eth0"
    that leads nowhere, which the CRI plugin insists on), in one plugin directory."""
    bin_dir = Path(base, "cni-bin")
    bin_dir.mkdir()
    (bin_dir / "loopback").symlink_to("/usr/lib/cni/loopback")
    (bin_dir / "dummy-eth0").symlink_to(REPO / "tests" / "cri" / "dummy-eth0")
    conf = Path(base, "cni")
    conf.mkdir()
    (conf / "10-runsc-py-test.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "runsc-py-test",
        "plugins": [{"type": "loopback"}, {"type": "dummy-eth0"}]}))


def ctr(base: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", f"{base}/containerd.sock", "--namespace",
                           K8S_NAMESPACE, *args], capture_output=True, text=True,
                          timeout=timeout)


def wait_for(cond, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
