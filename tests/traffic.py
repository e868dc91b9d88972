"""Running scenario traffic and reading what the apiserver made of it.

Driver runs kubectl and Python-client steps and records one Outcome per step; the audit
helpers wait for complete audit records, drop setup identities and key each request by who
asked for what, so two runs of the same traffic can be compared request by request.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kube import Kube

# Identities whose requests are setup, not scenario traffic: the admin token, the
# controller manager (not logged by the harness' audit policy anyway) and the apiserver's
# own loopback client.
SETUP_USERS = frozenset({"admin", "kcm", "system:apiserver"})
FINAL_STAGES = ("ResponseComplete", "Panic")  # the audit record that carries the outcome


# ---- waiting and asking ------------------------------------------------------------------


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check`` every 0.1 s; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout:.0f}s")
        time.sleep(0.1)


def sar_allowed(
    kube: Kube,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str = "",
    name: str = "",
    groups: Iterable[str] = (),
) -> bool:
    """What the apiserver's authorizer says right now (SubjectAccessReview as admin)."""
    from kubernetes import client as kc

    attrs = {"verb": verb, "group": group, "resource": resource, "namespace": namespace,
             "name": name}  # fmt: skip
    body = {"spec": {"user": user, "groups": list(groups), "resourceAttributes": attrs}}
    authz = kc.AuthorizationV1Api(kube.admin_client())
    return bool(authz.create_subject_access_review(body).status.allowed)


def sa_user(namespace: str, name: str) -> tuple[str, tuple[str, ...]]:
    """Username and groups of a service account, as its tokens authenticate."""
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    return f"system:serviceaccount:{namespace}:{name}", groups


# ---- steps -------------------------------------------------------------------------------

_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)  # 403 in kubectl's error lines


@dataclass(frozen=True)
class Outcome:
    """One command or client call of the scenario and how the apiserver answered it.

    ``code`` is kubectl's exit code, or the HTTP status of a Python client call (200 when it
    succeeded). ``forbidden`` is true when the apiserver refused a request of it with 403
    Forbidden (the authorizer, a refused impersonation, or a handler's own check).
    """

    actor: str
    client: str
    action: str
    code: int
    forbidden: bool
    detail: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Identifies the step across runs of the same scenario."""
        return (self.actor, self.client, self.action)

    def line(self) -> str:
        """One progress line, as scripts/record-demo.py prints it."""
        status = "ok" if self.code in (0, 200) else (
            f"exit {self.code}" if self.client == "kubectl" else f"HTTP {self.code}"
        )  # fmt: skip
        if self.forbidden:
            status += " (forbidden)"
        return f"  {self.actor:>22}: {self.client} {self.action[:70]:<70} {status}"


@dataclass
class Driver:
    """Runs scenario steps against a cluster and keeps their outcomes in order."""

    kube: Kube
    log: Callable[[str], None] | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def _record(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        if self.log is not None:
            self.log(outcome.line())
        return outcome

    def kubectl(self, who: str | Path, *args: str, stdin: str | None = None) -> Outcome:
        """kubectl as a static user (name) or a service account (kubeconfig path)."""
        r = self.kube.kubectl(who, "--request-timeout=5s", *args, check=False, input=stdin)
        actor = who if isinstance(who, str) else who.stem
        detail = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.stdout.strip()
        return self._record(Outcome(actor, "kubectl", " ".join(args), r.returncode,
                                    bool(_FORBIDDEN.search(r.stderr)), detail[:300]))  # fmt: skip

    def python(self, namespace: str, sa: str, action: str, call: Callable[[Any], Any]) -> Outcome:
        """A call through the Python client authenticated as a service account."""
        from kubernetes import client as kc

        api = self.kube.client(kubeconfig=self.kube.sa_kubeconfig(namespace, sa))
        try:
            result = call(api)
            if hasattr(result, "read"):  # a streamed response (watch): drain it
                result.read()
            code, detail = 200, ""
        except kc.ApiException as err:
            code, detail = int(err.status), str(err.reason)
        return self._record(Outcome(sa, "python", action, code, code == 403, detail))


# ---- audit --------------------------------------------------------------------------------


def audit_size(kube: Kube) -> int:
    """Current length of the audit log in bytes (an offset for scenario_lines)."""
    try:
        return kube.audit_log_path.stat().st_size
    except FileNotFoundError:
        return 0


def _user(event: dict[str, Any]) -> str:
    return str(event.get("user", {}).get("username", ""))


def scenario_lines(kube: Kube, start: int = 0, timeout: float = 30) -> list[bytes]:
    """Raw audit lines written after byte ``start``, setup identities dropped.

    Waits until every request that has a RequestReceived record also has its final record
    (the final stage is written after the client already got its answer).
    """
    deadline = time.monotonic() + timeout
    while True:
        with kube.audit_log_path.open("rb") as f:
            f.seek(start)
            raw = f.read()
        raw = raw[: raw.rfind(b"\n") + 1]  # complete lines only
        lines = [ln + b"\n" for ln in raw.splitlines() if ln.strip()]
        kept = [ln for ln in lines if _user(json.loads(ln)) not in SETUP_USERS]
        events = [json.loads(ln) for ln in kept]
        started = {e["auditID"] for e in events if e["stage"] == "RequestReceived"}
        done = {e["auditID"] for e in events if e["stage"] in FINAL_STAGES}
        if started <= done:
            return kept
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(started - done)} audited request(s) never completed")
        time.sleep(0.1)


def scenario_events(kube: Kube, start: int = 0, timeout: float = 30) -> list[dict[str, Any]]:
    """scenario_lines, parsed."""
    return [json.loads(ln) for ln in scenario_lines(kube, start, timeout)]


RequestKey = tuple[str, str, str, str, str, str, str, str]


def _refused_impersonation(event: dict[str, Any]) -> str:
    """`users/bob` when the request failed because impersonating that identity was refused.

    Such a request never reaches authorization: no decision annotation, no impersonatedUser.
    """
    status = event.get("responseStatus") or {}
    details = status.get("details") or {}
    if status.get("code") == 403 and " cannot impersonate" in status.get("message", ""):
        return f"{details.get('kind', '')}/{details.get('name', '')} (refused)"
    return ""


def request_key(event: dict[str, Any]) -> RequestKey:
    """Who asked for what, without the parts that differ between runs (IDs, times, versions).

    (user, impersonated user, verb, API group, resource[/subresource], namespace, name, path)
    """
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    path = "" if ref else event.get("requestURI", "").split("?")[0]
    as_user = (event.get("impersonatedUser") or {}).get("username", "")
    return (_user(event), str(as_user or _refused_impersonation(event)), event.get("verb", ""),
            ref.get("apiGroup", ""), resource, ref.get("namespace", ""), ref.get("name", ""),
            path)  # fmt: skip


def decision(event: dict[str, Any]) -> str:
    """How authorization treated a final-stage record.

    `allow` or `forbid` as the authorizer logged it; `forbid` for a refused impersonation
    (it never reaches the authorizer); `allow+403` when the authorizer allowed the request
    but the handler refused it with 403 after a check of its own (server-side apply that
    would create the object also needs `create`) or admission did.
    """
    logged = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
    code = (event.get("responseStatus") or {}).get("code")
    if not logged:
        return "forbid" if _refused_impersonation(event) else ""
    return "allow+403" if logged == "allow" and code == 403 else str(logged)


def decisions(events: Iterable[dict[str, Any]]) -> dict[RequestKey, str]:
    """Authorization decision per distinct request: `allow`, `forbid`, or `mixed`."""
    seen: dict[RequestKey, set[str]] = {}
    for e in events:
        if e.get("stage") in FINAL_STAGES and (d := decision(e)):
            seen.setdefault(request_key(e), set()).add(d)
    return {k: (v.pop() if len(v) == 1 else "mixed") for k, v in seen.items()}


def audit_ids(events: Iterable[dict[str, Any]]) -> set[str]:
    """Distinct auditIDs: one per API request, whatever the number of stages logged."""
    return {str(e["auditID"]) for e in events}
