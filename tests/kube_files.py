"""Files and helpers behind tests/kube.py: binaries, ports, certificates, audit policy."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.3")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
REPO = Path(__file__).resolve().parents[1]

# Static users: name -> groups. Tokens are "<name>-token". "admin" and "kcm" are
# system:masters; the audit policy drops "kcm" (controller noise) entirely.
DEFAULT_USERS: dict[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "kcm": ("system:masters",),
    "alice": ("team-a-devs", "qa"),
    "bob": ("team-b-devs",),
    "carol": ("auditors",),
    "dave": ("team-a-devs",),
    "erin": ("platform",),
    "mallory": (),
    "nobody": (),
    "reader": (),
}
KCM_CONTROLLERS = (
    "clusterrole-aggregation-controller",
    "serviceaccount-controller",
    "namespace-controller",
    "garbage-collector-controller",
)

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
- level: None
  users: ["kcm"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: Metadata
"""


class MissingBinaries(RuntimeError):
    """The control-plane binaries have not been built."""


def bin_dir() -> Path:
    """Where scripts/build-k8s.sh puts the binaries (override: RBAC_ADVISOR_K8S_BIN)."""
    if env := os.environ.get("RBAC_ADVISOR_K8S_BIN"):
        return Path(env)
    cache = os.environ.get("RBAC_ADVISOR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rbac-advisor"
    )
    return Path(cache) / f"k8s-{K8S_VERSION}" / "bin"


def check_binaries(directory: Path | None = None) -> Path:
    """Return the bin dir, or raise MissingBinaries with the command that builds them."""
    d = directory or bin_dir()
    missing = [b for b in BINARIES if not os.access(d / b, os.X_OK)]
    if missing:
        raise MissingBinaries(
            f"Kubernetes test binaries missing in {d} ({', '.join(missing)}): "
            "run `bash scripts/build-k8s.sh` (first build about 6 min on 2 cores, then cached)"
        )
    return d


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (small race until the server binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def make_pki(pki: Path) -> None:
    """A throw-away CA (ca.crt), a serving cert for 127.0.0.1/localhost, and an SA key."""
    pki.mkdir(parents=True, exist_ok=True)
    ossl = shutil.which("openssl")
    if ossl is None:
        raise RuntimeError("openssl CLI not found (needed for test certificates)")
    ca, ca_key = pki / "ca.crt", pki / "ca.key"
    srv_key, srv_csr = pki / "server.key", pki / "server.csr"
    run([ossl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
         "-keyout", ca_key, "-out", ca, "-subj", "/CN=rbac-advisor-test-ca",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])  # fmt: skip
    run([ossl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", srv_key, "-out", srv_csr,
         "-subj", "/CN=kube-apiserver"])  # fmt: skip
    ext = pki / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    run([ossl, "x509", "-req", "-in", srv_csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "3650", "-out", pki / "server.crt",
         "-extfile", ext])  # fmt: skip
    run([ossl, "genrsa", "-out", pki / "sa.key", "2048"])
