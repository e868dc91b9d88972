"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager.

Binaries come from scripts/build-k8s.sh (built from Go modules into a versioned cache dir).
Everything listens on 127.0.0.1 on free ports and lives in one temporary directory;
processes are stopped by pid. Usable from pytest (see conftest.py) and from scripts.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kube_files import (
    AUDIT_POLICY,
    DEFAULT_USERS,
    KCM_CONTROLLERS,
    MissingBinaries,
    bin_dir,
    check_binaries,
    free_port,
    make_pki,
    tail,
)

__all__ = [
    "AUDIT_POLICY",
    "DEFAULT_USERS",
    "KCM_CONTROLLERS",
    "Kube",
    "MissingBinaries",
    "bin_dir",
    "check_binaries",
    "free_port",
]


def _die_with_parent() -> None:
    """In the child: be killed when the test process dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PDEATHSIG


class Kube:
    """One throw-away control plane. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        users: Mapping[str, Iterable[str]] | None = None,
        controllers: bool = True,
        binaries: Path | None = None,
        extra_apiserver_args: Sequence[str] = (),
        audit_policy: str = AUDIT_POLICY,
        start_timeout: float = 120.0,
    ) -> None:
        """Prepare paths; nothing runs until start()."""
        self.bin = check_binaries(binaries)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kube-"))
        self.users = {u: tuple(g) for u, g in (users or DEFAULT_USERS).items()}
        for required in ("admin", "kcm"):
            self.users.setdefault(required, ("system:masters",))
        self.controllers = controllers
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.audit_policy = audit_policy
        self.start_timeout = start_timeout
        self.etcd_port = free_port()
        self.peer_port = free_port()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.audit_log_path = self.workdir / "audit.log"
        self.ca_path = self.workdir / "pki" / "ca.crt"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.start_seconds = 0.0
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    # ---- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Kube:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write certificates and config, start etcd, apiserver and KCM; wait until ready."""
        t0 = time.monotonic()
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            if self.controllers:
                self._start_kcm()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        """SIGTERM each process (reverse start order), SIGKILL after 15 s; remove temp dir."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=10)
        if self._own_workdir and not os.environ.get("RBAC_ADVISOR_KEEP_KUBE"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _prepare(self) -> None:
        make_pki(self.workdir / "pki")
        with (self.workdir / "tokens.csv").open("w") as f:
            for user, groups in self.users.items():
                line = f"{self.token(user)},{user},uid-{user}"
                f.write(line + (f',"{",".join(groups)}"' if groups else "") + "\n")
        (self.workdir / "audit-policy.yaml").write_text(self.audit_policy)
        for user in self.users:
            self.write_kubeconfig(self.workdir / "kubeconfig" / f"{user}.yaml", self.token(user))

    @staticmethod
    def token(user: str) -> str:
        """The static bearer token of a user from the token file."""
        return f"{user}-token"

    def _spawn(self, name: str, cmd: Sequence[str]) -> subprocess.Popen[bytes]:
        logf = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        logf.close()
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines a component wrote."""
        return tail(self.workdir / f"{name}.log", lines)

    def _wait(self, name: str, probe: Any, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} before {what}; last output:\n"
                    + self.log_tail(name)
                )
            if probe():
                return
            time.sleep(0.25)
        raise RuntimeError(
            f"{name} not {what} after {self.start_timeout:.0f}s; last output:\n"
            + self.log_tail(name)
        )

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._spawn("etcd", [
            self.bin / "etcd", "--name=test", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}", "--unsafe-no-fsync", "--log-level=warn",
        ])  # fmt: skip

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                    return bool(json.loads(r.read()).get("health") == "true")
            except (OSError, ValueError):
                return False

        self._wait("etcd", healthy, "healthy")

    def _start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        self._spawn("kube-apiserver", [
            self.bin / "kube-apiserver",
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={self.ca_path}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-format=json", "--audit-log-maxsize=0",
            "--endpoint-reconciler-type=none", "--profiling=false",
            *([] if self.controllers else ["--disable-admission-plugins=ServiceAccount"]),
            *self.extra_apiserver_args,
        ])  # fmt: skip
        ctx = ssl.create_default_context(cafile=str(self.ca_path))

        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.server + "/readyz", timeout=3, context=ctx) as r:
                    return bool(r.status == 200)
            except (OSError, urllib.error.HTTPError):
                return False

        self._wait("kube-apiserver", ready, "ready (/readyz)")

    def _start_kcm(self) -> None:
        self._spawn("kube-controller-manager", [
            self.bin / "kube-controller-manager",
            f"--kubeconfig={self.kubeconfig('kcm')}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
            f"--controllers={','.join(KCM_CONTROLLERS)}",
        ])  # fmt: skip
        rbac = self.admin_client()
        from kubernetes import client as kc

        api = kc.RbacAuthorizationV1Api(rbac)

        def aggregated() -> bool:
            try:
                return bool(api.read_cluster_role("admin").rules)
            except Exception:
                return False

        self._wait("kube-controller-manager", aggregated, "aggregating ClusterRole admin")

    # ---- credentials -----------------------------------------------------------------

    def write_kubeconfig(self, path: Path, token: str, user: str = "user") -> Path:
        """Write a kubeconfig for this server with a bearer token; returns the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_path)},
                },
            ],  # fmt: skip
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        path.write_text(json.dumps(doc, indent=1))
        path.chmod(0o600)
        return path

    def kubeconfig(self, user: str) -> Path:
        """Kubeconfig of a static user (see DEFAULT_USERS)."""
        if user not in self.users:
            raise KeyError(f"no static user {user!r}; known: {sorted(self.users)}")
        return self.workdir / "kubeconfig" / f"{user}.yaml"

    def sa_token(self, namespace: str, name: str, *, create: bool = True, hours: int = 2) -> str:
        """A TokenRequest token for a ServiceAccount (namespace and SA created if missing)."""
        from kubernetes import client as kc

        core = kc.CoreV1Api(self.admin_client())
        if create:
            self.ensure_namespace(namespace)
            with contextlib.suppress(kc.ApiException):
                core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        req = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": hours * 3600}}
        )
        return str(req.status.token)

    def sa_kubeconfig(self, namespace: str, name: str) -> Path:
        """Kubeconfig authenticating as ``system:serviceaccount:<namespace>:<name>``."""
        path = self.workdir / "kubeconfig" / f"sa-{namespace}-{name}.yaml"
        if not path.exists():
            self.write_kubeconfig(path, self.sa_token(namespace, name), f"{namespace}-{name}")
        return path

    def ensure_namespace(self, name: str) -> None:
        """Create a namespace unless it exists."""
        from kubernetes import client as kc

        core = kc.CoreV1Api(self.admin_client())
        with contextlib.suppress(kc.ApiException):
            core.create_namespace({"metadata": {"name": name}})

    # ---- clients ---------------------------------------------------------------------

    def client(self, user: str = "admin", kubeconfig: Path | None = None) -> Any:
        """A cached kubernetes ApiClient for a static user (or any kubeconfig)."""
        from kubernetes import client as kc
        from kubernetes import config as kconf

        path = kubeconfig or self.kubeconfig(user)
        with self._lock:
            if str(path) not in self._clients:
                cfg = kc.Configuration()
                kconf.load_kube_config(
                    config_file=str(path), client_configuration=cfg, persist_config=False
                )
                cfg.connection_pool_maxsize = 32
                self._clients[str(path)] = kc.ApiClient(cfg)
            return self._clients[str(path)]

    def admin_client(self) -> Any:
        """ApiClient authenticated as ``admin`` (system:masters)."""
        return self.client("admin")

    def kubectl(
        self,
        user: str | Path,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl as a static user (or with a kubeconfig path).

        Every call gets a fresh --cache-dir, so discovery requests show up every time.
        """
        cfg = user if isinstance(user, Path) else self.kubeconfig(user)
        with tempfile.TemporaryDirectory(prefix="kubectl-cache-") as cache:
            cmd = [str(self.bin / "kubectl"), f"--kubeconfig={cfg}", f"--cache-dir={cache}",
                   *args]  # fmt: skip
            proc = subprocess.run(
                cmd, capture_output=True, text=True, input=input, timeout=timeout,
                env={**os.environ, "HOME": cache, "KUBECONFIG": ""},
            )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} as {user} exited {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    def wait_allowed(
        self,
        user: str,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str = "",
        name: str = "",
        groups: Sequence[str] = (),
        timeout: float = 20,
    ) -> None:
        """Poll SubjectAccessReview until the apiserver's RBAC cache allows the request."""
        from kubernetes import client as kc

        authz = kc.AuthorizationV1Api(self.admin_client())
        body = {
            "spec": {
                "user": user,
                "groups": list(groups),
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "namespace": namespace,
                    "name": name,
                },
            }
        }
        deadline = time.monotonic() + timeout
        while not authz.create_subject_access_review(body).status.allowed:
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} still may not {verb} {resource} after {timeout}s")
            time.sleep(0.1)

    # ---- audit -----------------------------------------------------------------------

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """Every audit event written so far (complete lines only)."""
        try:
            data = self.audit_log_path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n") and line.strip():
                yield json.loads(line)

    def wait_audit(
        self, audit_id: str, stage: str = "ResponseComplete", timeout: float = 15
    ) -> list[dict[str, Any]]:
        """Poll the audit log until ``audit_id`` has reached ``stage``; return its events."""
        deadline = time.monotonic() + timeout
        needle = audit_id.encode()
        while True:
            events = []
            with contextlib.suppress(FileNotFoundError):
                for line in self.audit_log_path.read_bytes().splitlines():
                    if needle in line:
                        ev = json.loads(line)
                        if ev.get("auditID") == audit_id:
                            events.append(ev)
            if any(e.get("stage") == stage for e in events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"audit ID {audit_id} did not reach {stage} within {timeout}s "
                    f"(stages seen: {[e.get('stage') for e in events]})"
                )
            time.sleep(0.1)

    def etcd_compact(self) -> int:
        """Compact etcd at its current revision (expires older continue tokens)."""

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            req = urllib.request.Request(
                self.etcd_url + path, data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                return dict(json.loads(r.read()))

        rev = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev
