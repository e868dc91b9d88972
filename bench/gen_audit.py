"""Generate a realistic native audit log for benchmarks (audit.k8s.io/v1, JSON lines).

Every request is logged at RequestReceived and ResponseComplete (long-running ones also at
ResponseStarted), stages interleaved as a busy apiserver writes them. Subjects are
Zipf-skewed (a few controllers do most of the traffic), user agents are kubectl and
controllers, some requests are denied, some impersonated, some unauthenticated (401).
Events are about 1 KB, serialised in Go's field order like the apiserver's JSON backend.

    python bench/gen_audit.py --lines 2000000 -o /tmp/audit.log [--gzip]
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import heapq
import json
import random
import sys
import uuid
import zlib
from datetime import UTC, datetime

VERBS_READ = ("get", "list", "watch")
RESOURCES = (
    ("", "pods"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "services"),
    ("", "endpoints"),
    ("", "serviceaccounts"),
    ("", "events"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("coordination.k8s.io", "leases"),
    ("discovery.k8s.io", "endpointslices"),
    ("networking.k8s.io", "ingresses"),
    ("rbac.authorization.k8s.io", "rolebindings"),
)
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpoint-controller",
    "endpointslice-controller",
    "generic-garbage-collector",
    "namespace-controller",
    "job-controller",
    "cronjob-controller",
    "statefulset-controller",
    "daemon-set-controller",
)


def _q(s: str) -> str:
    return json.dumps(s, separators=(",", ":"))


class Subject:
    """One generated identity with its habits."""

    def __init__(self, rng: random.Random, i: int, namespaces: list[str]) -> None:
        self.ns = rng.choice(namespaces)
        kind = rng.random()
        if i < len(CONTROLLERS):
            self.user = f"system:serviceaccount:kube-system:{CONTROLLERS[i]}"
            self.groups = [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ]
            self.ua = (
                "kube-controller-manager/v1.36.3 (linux/amd64) kubernetes/a1b2c3d/"
                f"system:serviceaccount:kube-system:{CONTROLLERS[i]}"
            )
            self.ns = ""
            self.sa = True
        elif kind < 0.6:
            name = f"app-{i}"
            self.user = f"system:serviceaccount:{self.ns}:{name}"
            self.groups = [
                "system:serviceaccounts",
                f"system:serviceaccounts:{self.ns}",
                "system:authenticated",
            ]
            self.ua = rng.choice(
                (
                    f"{name}/v0.0.0 (linux/amd64) kubernetes/$Format",
                    "argocd-application-controller/v2.11.0 (linux/amd64) kubernetes/abcdef0",
                    "Go-http-client/2.0",
                    "OpenAPI-Generator/29.0.0/python",
                )
            )
            self.sa = True
        else:
            self.user = f"user{i}@example.com"
            self.groups = [f"team-{i % 40}", "developers", "system:authenticated"]
            self.ua = rng.choice(
                (
                    "kubectl/v1.36.3 (linux/amd64) kubernetes/a1b2c3d",
                    "kubectl/v1.35.1 (darwin/arm64) kubernetes/0f1e2d3",
                    "Helm/3.15.2",
                    "k9s/v0.32.5 (linux/amd64) kubernetes/$Format",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
                )
            )
            self.sa = False
        self.ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        # A working set: what this identity usually touches (pods pinned to nodes,
        # a few namespaces, resources and object names), plus rare exploration.
        base = i * 7919
        self.pods = [
            (f"{i}-{base % 97 + k:x}", f"node-{(base + k) % 40}") for k in range(1 + i % 3)
        ]
        self.spaces = [self.ns] if self.ns else rng.sample(namespaces, 1 + i % 3)
        self.kinds = [
            RESOURCES[min(int(rng.paretovariate(1.2)) - 1, len(RESOURCES) - 1)]
            for _ in range(2 + i % 5)
        ]
        self.names = 1 + i % 12
        self.uid = str(uuid.UUID(int=rng.getrandbits(128)))


def _user_json(s: Subject, pod: str, node: str) -> str:
    groups = ",".join(_q(g) for g in s.groups)
    if s.sa:
        extra = (
            f'"extra":{{"authentication.kubernetes.io/credential-id":["JTI={s.uid}"],'
            f'"authentication.kubernetes.io/node-name":[{_q(node)}],'
            f'"authentication.kubernetes.io/node-uid":["{s.uid[::-1]}"],'
            f'"authentication.kubernetes.io/pod-name":[{_q(pod)}],'
            f'"authentication.kubernetes.io/pod-uid":["{s.uid}"]}}'
        )
    else:
        extra = '"extra":{"authentication.kubernetes.io/credential-id":["X509SHA256=4b1a"]}'
    return f'{{"username":{_q(s.user)},"uid":"{s.uid}","groups":[{groups}],{extra}}}'


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _request(rng: random.Random, s: Subject, t: float, namespaces: list[str]) -> dict[str, str]:
    explore = rng.random() < 0.03
    if explore:
        group, res = RESOURCES[rng.randrange(len(RESOURCES))]
        ns = rng.choice(namespaces)
    else:
        group, res = rng.choice(s.kinds)
        ns = rng.choice(s.spaces)
    n_names = 50 if explore else s.names
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    r = rng.random()
    sub = ""
    name = ""
    if r < 0.45:
        verb = "get"
        name = f"{res[:-1]}-{rng.randrange(n_names)}"
        uri = f"{prefix}/namespaces/{ns}/{res}/{name}"
    elif r < 0.7:
        verb = "list"
        uri = f"{prefix}/namespaces/{ns}/{res}?limit=500&resourceVersion=0"
    elif r < 0.78:
        verb = "watch"
        uri = (
            f"{prefix}/namespaces/{ns}/{res}?allowWatchBookmarks=true&resourceVersion=12345"
            "&timeoutSeconds=420&watch=true"
        )
    elif r < 0.86:
        verb = rng.choice(("update", "patch"))
        name = f"{res[:-1]}-{rng.randrange(n_names)}"
        uri = f"{prefix}/namespaces/{ns}/{res}/{name}"
    elif r < 0.93:
        verb = "create"
        name = f"{res[:-1]}-{rng.getrandbits(32):x}"
        uri = f"{prefix}/namespaces/{ns}/{res}?fieldManager=kubectl-client-side-apply"
    elif r < 0.96:
        verb = "delete"
        name = f"{res[:-1]}-{rng.randrange(n_names)}"
        uri = f"{prefix}/namespaces/{ns}/{res}/{name}"
    elif r < 0.98:
        verb, group, res, sub = "create", "", "pods", "exec"
        name = f"pod-{rng.randrange(50)}"
        uri = (
            f"/api/v1/namespaces/{ns}/pods/{name}/exec?command=sh&command=-c&command=cat+%2Fetc"
            "%2Fpasswd&container=app&stdin=true&stdout=true&tty=true"
        )
    else:
        return {"verb": "get", "uri": rng.choice(("/api", "/apis", "/version", "/healthz"))}
    out = {"verb": verb, "uri": uri, "res": res, "group": group, "ns": ns, "sub": sub}
    if name:
        out["name"] = name
    return out


def _event(
    stage: str, aid: str, req: dict[str, str], s: Subject, t: float, done: dict[str, str]
) -> str:
    parts = [
        '{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata",',
        f'"auditID":"{aid}","stage":"{stage}","requestURI":{_q(req["uri"])},',
        f'"verb":"{req["verb"]}","user":{done["user"]},',
    ]
    if "imp" in done:
        parts.append(f'"impersonatedUser":{done["imp"]},')
    parts.append(f'"sourceIPs":["{s.ip}"],"userAgent":{_q(s.ua)},')
    if "res" in req:
        ref = f'"resource":"{req["res"]}","namespace":"{req["ns"]}"'
        if "name" in req:
            ref += f',"name":{_q(req["name"])}'
        if req["group"]:
            ref += f',"apiGroup":"{req["group"]}"'
        ref += f',"apiVersion":"{"v1"}"'
        if req["sub"]:
            ref += f',"subresource":"{req["sub"]}"'
        parts.append(f'"objectRef":{{{ref}}},')
    if stage != "RequestReceived":
        parts.append(f'"responseStatus":{done["status"]},')
    parts.append(f'"requestReceivedTimestamp":"{_ts(t)}","stageTimestamp":"{_ts(t + 0.004)}"')
    if stage != "RequestReceived" and done["ann"]:
        parts.append(f',"annotations":{done["ann"]}')
    parts.append("}")
    return "".join(parts)


def generate(lines: int, subjects: int, seed: int, out) -> int:  # type: ignore[no-untyped-def]
    """Write about ``lines`` events to ``out``; return the number of requests."""
    rng = random.Random(seed)
    namespaces = [f"team-{i:03d}" for i in range(60)] + ["default", "kube-system"]
    people = [Subject(rng, i, namespaces) for i in range(subjects)]
    # Zipf-like weights: subject i gets weight 1/(i+1)^1.1
    cum: list[float] = []
    acc = 0.0
    for i in range(subjects):
        acc += 1.0 / (i + 1) ** 1.1
        cum.append(acc)
    t = 1_795_000_000.0
    pending: list[tuple[int, int, str]] = []  # heap of (emit-at line, seq, text)
    delayed: list[tuple[int, str]] = []
    written = 0
    requests = 0
    while written < lines:
        s = people[bisect.bisect_left(cum, rng.random() * acc)]
        t += rng.expovariate(400.0)
        req = _request(rng, s, t, namespaces)
        aid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        pod, node = rng.choice(s.pods)
        done = {"user": _user_json(s, f"pod-{pod}", node)}
        imp = not s.sa and rng.random() < 0.01
        if imp:
            target = people[rng.randrange(subjects)]
            done["imp"] = (
                f'{{"username":{_q(target.user)},'
                f'"groups":[{",".join(_q(g) for g in target.groups)}]}}'
            )
        r = rng.random()
        if r < 0.003:
            # failed authentication: one ResponseStarted event, empty user
            line = (
                '{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata",'
                f'"auditID":"{aid}","stage":"ResponseStarted","requestURI":"/api/v1/pods",'
                f'"verb":"list","user":{{}},"sourceIPs":["{s.ip}"],"userAgent":"curl/8.5.0",'
                '"responseStatus":{"metadata":{},"status":"Failure","message":"Unauthorized",'
                f'"reason":"Unauthorized","code":401}},"requestReceivedTimestamp":"{_ts(t)}",'
                f'"stageTimestamp":"{_ts(t)}"}}'
            )
            out.write(line + "\n")
            written += 1
            requests += 1
            continue
        denied = r < 0.03
        if denied:
            done["status"] = (
                '{"metadata":{},"status":"Failure","message":"forbidden: User cannot do it",'
                '"reason":"Forbidden","details":{},"code":403}'
            )
            done["ann"] = (
                '{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}'
            )
        else:
            code = 201 if req["verb"] == "create" else 200
            code = 101 if req.get("sub") == "exec" else code
            done["status"] = f'{{"metadata":{{}},"code":{code}}}'
            who = (
                f'ServiceAccount "{s.user.rsplit(":", 1)[1]}/{s.user.split(":")[2]}"'
                if s.sa
                else f'Group "{s.groups[0]}"'
            )
            crc = zlib.crc32(s.user.encode())
            done["ann"] = (
                '{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":'
                + _q(
                    f'RBAC: allowed by ClusterRoleBinding "crb-{crc % 97}" of '
                    f'ClusterRole "role-{crc % 31}" to {who}'
                )
                + "}"
            )
        requests += 1
        out.write(_event("RequestReceived", aid, req, s, t, done) + "\n")
        written += 1
        long_running = req["verb"] == "watch" or req.get("sub") == "exec"
        if long_running:
            delayed.append((written + 1, _event("ResponseStarted", aid, req, s, t, done)))
            lag = rng.randrange(200, 5000)
        else:
            lag = int(rng.expovariate(1 / 8.0))
        heapq.heappush(
            pending, (written + lag, requests, _event("ResponseComplete", aid, req, s, t, done))
        )
        if delayed:
            for item in delayed:
                out.write(item[1] + "\n")
                written += 1
            delayed.clear()
        # write the stages that are due, in order of their due line
        while pending and pending[0][0] <= written:
            out.write(heapq.heappop(pending)[2] + "\n")
            written += 1
    while pending:
        out.write(heapq.heappop(pending)[2] + "\n")
    return requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--subjects", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--gzip", action="store_true", help="also write OUTPUT.gz")
    a = ap.parse_args()
    if a.output == "-":
        n = generate(a.lines, a.subjects, a.seed, sys.stdout)
    else:
        with open(a.output, "w", encoding="utf-8", buffering=1 << 20) as f:
            n = generate(a.lines, a.subjects, a.seed, f)
        if a.gzip:
            with open(a.output, "rb") as src, gzip.open(a.output + ".gz", "wb", 6) as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
    print(f"requests={n}", file=sys.stderr)


if __name__ == "__main__":
    main()
