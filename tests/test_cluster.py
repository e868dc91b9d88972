"""cluster.fetch against a real kube-apiserver, plus a fake server for retries and resets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kube import Kube, free_port
from kubernetes import client as kc

from rbac_advisor import cluster
from rbac_advisor.errors import ClusterForbidden, ClusterUnreachable, ExitCode

REPO = Path(__file__).resolve().parents[1]
RBAC = "rbac.authorization.k8s.io"


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {key(o): o for o in items}
    assert len(out) == len(items), "duplicate objects in a fetch"
    return out


def fetch_as(kube: Kube, user: str, **kw: Any) -> list[dict[str, Any]]:
    return cluster.fetch(str(kube.kubeconfig(user)), None, False, **kw)


@pytest.fixture(scope="module")
def objects(kube: Kube) -> dict[str, Any]:
    """A namespace with a Role, RoleBinding, ClusterRole and ClusterRoleBinding of our own."""
    kube.ensure_namespace("fetch-a")
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    role = {
        "metadata": {"name": "pod-reader", "labels": {"team": "a"}},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"],
             "verbs": ["get"]},
        ],
    }  # fmt: skip
    rb = {
        "metadata": {"name": "read-pods"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"},
        "subjects": [
            {"kind": "User", "apiGroup": RBAC, "name": "alice"},
            {"kind": "ServiceAccount", "name": "builder"},
        ],
    }
    cr = {
        "metadata": {"name": "fetch-urls", "annotations": {"note": "x"}},
        "rules": [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}],
    }
    crb = {
        "metadata": {"name": "fetch-urls"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "fetch-urls"},
        "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "auditors"}],
    }
    rbac.create_namespaced_role("fetch-a", role)
    rbac.create_namespaced_role_binding("fetch-a", rb)
    rbac.create_cluster_role(cr)
    rbac.create_cluster_role_binding(crb)
    return {"role": role, "rb": rb, "cr": cr, "crb": crb}


@pytest.mark.cluster
def test_fetch_returns_bootstrap_and_created_objects(kube: Kube, objects: dict[str, Any]) -> None:
    items = by_key(fetch_as(kube, "admin"))
    admin = items[("ClusterRole", "", "cluster-admin")]
    assert admin["apiVersion"] == f"{RBAC}/v1"
    assert admin["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults"}
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]} in admin["rules"]
    assert {"nonResourceURLs": ["*"], "verbs": ["*"]} in admin["rules"]
    assert ("ClusterRoleBinding", "", "system:discovery") in items

    role = items[("Role", "fetch-a", "pod-reader")]
    assert role["rules"] == objects["role"]["rules"]
    assert role["metadata"]["labels"] == {"team": "a"}
    rb = items[("RoleBinding", "fetch-a", "read-pods")]
    assert rb["roleRef"] == objects["rb"]["roleRef"]
    # The server keeps a namespace-less ServiceAccount subject as written.
    assert rb["subjects"][1] == {"kind": "ServiceAccount", "name": "builder"}
    assert items[("ClusterRole", "", "fetch-urls")]["rules"] == objects["cr"]["rules"]
    assert items[("ClusterRoleBinding", "", "fetch-urls")]["subjects"] == objects["crb"]["subjects"]
    for obj in items.values():
        assert "managedFields" not in obj["metadata"]
        assert list(obj)[:3] == ["apiVersion", "kind", "metadata"]


@pytest.mark.cluster
def test_fetch_equals_kubectl_get_yaml(kube: Kube, objects: dict[str, Any]) -> None:
    out = kube.kubectl(
        "admin", "get", "roles,clusterroles,rolebindings,clusterrolebindings", "-A", "-o", "json"
    )
    from_kubectl = by_key(json.loads(out.stdout)["items"])
    fetched = by_key(fetch_as(kube, "admin"))
    assert fetched.keys() == from_kubectl.keys()
    for k, obj in fetched.items():
        assert obj == from_kubectl[k], k


@pytest.mark.cluster
def test_aggregated_cluster_roles_have_rules(kube: Kube) -> None:
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rbac.create_cluster_role({
        "metadata": {"name": "agg-parent"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-test": "yes"}}]},
        "rules": [],
    })  # fmt: skip
    child_rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}
    rbac.create_cluster_role(
        {"metadata": {"name": "agg-child", "labels": {"agg-test": "yes"}}, "rules": [child_rule]}
    )
    deadline = time.monotonic() + 30
    while True:
        items = by_key(fetch_as(kube, "admin"))
        parent = items[("ClusterRole", "", "agg-parent")]
        if parent.get("rules") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert parent["rules"] == [child_rule]
    assert parent["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"agg-test": "yes"}}]
    }
    view = items[("ClusterRole", "", "view")]
    assert view["aggregationRule"]["clusterRoleSelectors"]
    assert any("pods" in r.get("resources", []) for r in view["rules"])


@pytest.mark.cluster
def test_small_pages_give_the_same_objects(kube: Kube, objects: dict[str, Any]) -> None:
    pages: dict[str, list[int]] = {}
    small = fetch_as(
        kube, "admin", page_size=4, progress=lambda k, n: pages.setdefault(k, []).append(n)
    )
    whole = fetch_as(kube, "admin", page_size=500)
    assert by_key(small) == by_key(whole)
    n_cluster_roles = sum(1 for o in whole if o["kind"] == "ClusterRole")
    assert pages["ClusterRole"][-1] == n_cluster_roles
    assert len(pages["ClusterRole"]) == -(-n_cluster_roles // 4)  # one call per page


@pytest.mark.cluster
def test_pagination_reads_every_object_of_a_large_namespace(kube: Kube) -> None:
    ns, count = "fetch-many", 1500
    kube.ensure_namespace(ns)
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())

    def create(i: int) -> None:
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": f"rb-{i:05d}"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": f"user-{i}"}],
        })  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))
    fetched = fetch_as(kube, "admin", page_size=100)
    ours = [o for o in fetched if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == ns]
    assert sorted(o["metadata"]["name"] for o in ours) == [f"rb-{i:05d}" for i in range(count)]
    unpaginated = rbac.list_role_binding_for_all_namespaces()
    assert sum(o["kind"] == "RoleBinding" for o in fetched) == len(unpaginated.items)


@pytest.mark.cluster
def test_reader_clusterrole_is_enough(kube: Kube, objects: dict[str, Any]) -> None:
    kube.kubectl("admin", "apply", "-f", str(REPO / "deploy" / "reader-clusterrole.yaml"))
    kube.kubectl("admin", "create", "clusterrolebinding", "reader-for-test",
                 "--clusterrole=rbac-advisor-reader", "--user=reader")  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            as_reader = fetch_as(kube, "reader")
            break
        except ClusterForbidden:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert by_key(as_reader).keys() == by_key(fetch_as(kube, "admin")).keys()
    # the role also lets it read which namespaces exist (no RoleBinding in a missing one)
    with_ns = fetch_as(kube, "reader", with_namespaces=True)
    assert by_key(with_ns).keys() == by_key(fetch_as(kube, "admin", with_namespaces=True)).keys()
    assert any(o["kind"] == "Namespace" for o in with_ns)


@pytest.mark.cluster
def test_forbidden_names_the_missing_verb_and_resource(kube: Kube) -> None:
    with pytest.raises(ClusterForbidden) as err:
        fetch_as(kube, "nobody")
    assert err.value.verb == "list"
    assert err.value.resource.startswith(f"roles.{RBAC}")
    assert 'User "nobody"' in str(err.value)
    assert err.value.exit_code == ExitCode.CLUSTER

    # Allowed to list Roles and ClusterRoles only: the error names rolebindings.
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rbac.create_cluster_role(
        {
            "metadata": {"name": "half-reader"},
            "rules": [
                {"apiGroups": [RBAC], "resources": ["roles", "clusterroles"], "verbs": ["list"]}
            ],
        }
    )
    rbac.create_cluster_role_binding({
        "metadata": {"name": "half-reader"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "half-reader"},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "mallory"}],
    })  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        with pytest.raises(ClusterForbidden) as err:
            fetch_as(kube, "mallory")
        if err.value.resource.startswith("rolebindings") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert err.value.resource == f"rolebindings.{RBAC} (all namespaces)"
    assert "\n" not in str(err.value)


@pytest.mark.cluster
def test_bad_token_is_rejected_as_credentials(kube: Kube, tmp_path: Path) -> None:
    cfg = kube.write_kubeconfig(tmp_path / "bad.yaml", "not-a-valid-token")
    with pytest.raises(ClusterUnreachable, match=r"credentials rejected \(401"):
        cluster.fetch(str(cfg), None, False)


@pytest.mark.cluster
def test_untrusted_server_certificate(kube: Kube, tmp_path: Path) -> None:
    cfg = kube.write_kubeconfig(tmp_path / "tls.yaml", kube.token("admin"))
    doc = json.loads(cfg.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority"]  # system CAs do not know ours
    cfg.write_text(json.dumps(doc))
    with pytest.raises(ClusterUnreachable, match=r"cannot reach https://127\.0\.0\.1:\d+.*SSL"):
        cluster.fetch(str(cfg), None, False)


def test_unreachable_server_is_named(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable) as err:
        cluster.fetch(str(cfg), None, False)
    assert f"http://127.0.0.1:{port}" in str(err.value)
    assert "refused" in str(err.value).lower()
    assert time.monotonic() - t0 < 5


def test_missing_kubeconfig_and_context(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnreachable, match="nope.yaml"):
        cluster.fetch(str(tmp_path / "nope.yaml"), None, False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    with pytest.raises(ClusterUnreachable, match="prod"):
        cluster.fetch(str(cfg), "prod", False)


def test_in_cluster_outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterUnreachable, match="in-cluster"):
        cluster.fetch(None, None, True)


# ---- an expired continue token, produced on a real apiserver --------------------------------


@pytest.fixture(scope="module")
def uncached_kube(tmp_path_factory: pytest.TempPathFactory, kube: Kube) -> Iterator[Kube]:
    """A second apiserver whose paginated lists are served by etcd, not cache snapshots.

    With ListFromCacheSnapshot (beta, on in 1.36) a continue token survives etcd
    compaction, so the 410 path needs the gate off.
    """
    extra = ["--feature-gates=ListFromCacheSnapshot=false"]
    with Kube(tmp_path_factory.mktemp("kube410"), controllers=False,
              extra_apiserver_args=extra) as k:  # fmt: skip
        yield k


@pytest.mark.cluster
def test_expired_continue_token_relists_from_the_start(uncached_kube: Kube) -> None:
    k = uncached_kube
    rbac = kc.RbacAuthorizationV1Api(k.admin_client())
    calls: list[tuple[str, int]] = []

    def progress(kind: str, n: int) -> None:
        calls.append((kind, n))
        if kind == "ClusterRole" and len([c for c in calls if c[0] == kind]) == 2:
            rbac.create_cluster_role({"metadata": {"name": "zz-added-mid-list"}, "rules": []})
            k.etcd_compact()

    fetched = cluster.fetch(str(k.kubeconfig("admin")), None, False, page_size=10,
                            progress=progress)  # fmt: skip
    counts = [n for kind, n in calls if kind == "ClusterRole"]
    restart = next(i for i in range(1, len(counts)) if counts[i] <= counts[i - 1])
    assert counts[restart] == 10, counts  # the list started over with a first page
    names = {o["metadata"]["name"] for o in fetched if o["kind"] == "ClusterRole"}
    assert "zz-added-mid-list" in names  # the relist is a new, consistent list
    live = rbac.list_cluster_role().items
    assert names == {r.metadata.name for r in live}


# ---- the harness itself: audit log and identities ----------------------------------------


@pytest.mark.cluster
def test_harness_audit_log_has_both_stages_and_filters_controllers(kube: Kube) -> None:
    core = kc.CoreV1Api(kube.client("alice"))
    with pytest.raises(kc.ApiException) as err:
        core.list_namespaced_secret("default")
    assert err.value.status == 403
    audit_id = err.value.headers["Audit-Id"]
    events = kube.wait_audit(audit_id)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    done = events[-1]
    assert done["user"]["username"] == "alice"
    assert set(done["user"]["groups"]) == {"team-a-devs", "qa", "system:authenticated"}
    assert done["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert done["objectRef"] == {"resource": "secrets", "namespace": "default", "apiVersion": "v1"}
    users = {e.get("user", {}).get("username") for e in kube.audit_events()}
    assert "kcm" not in users and "admin" in users
    assert not any(e["requestURI"].startswith("/readyz") for e in kube.audit_events())


@pytest.mark.cluster
def test_harness_service_account_identity(kube: Kube) -> None:
    out = kube.kubectl(kube.sa_kubeconfig("harness", "robot"), "auth", "whoami", "-o", "json")
    info = json.loads(out.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:harness:robot"
    assert "system:serviceaccounts:harness" in info["groups"]
