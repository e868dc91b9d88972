"""Read the live RBAC objects of a cluster: the only module that imports ``kubernetes``.

Lists Roles, ClusterRoles, RoleBindings and ClusterRoleBindings page by page and returns
them as the camelCase dicts ``kubectl get -o yaml`` prints. Fails closed: any list or page
failure raises a ClusterError; a partial snapshot is never returned. The namespace names,
read on request, are the one exception: they only sharpen the recommendation, so failing
to list them is a logged warning and the objects come back without them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rbac_advisor.errors import ClusterError, ClusterForbidden, ClusterUnreachable
from rbac_advisor.rbac import RBAC_GROUP

log = logging.getLogger(__name__)

API_VERSION = f"{RBAC_GROUP}/v1"
MAX_ATTEMPTS = 5
MAX_RELISTS = 3
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Fields `rbac-advisor snapshot` leaves out: they change on every write and mean nothing offline.
VOLATILE_METADATA = ("managedFields", "uid", "resourceVersion", "creationTimestamp", "generation")


@dataclass(frozen=True, slots=True)
class Kind:
    """One listed kind: its name, plural, the client method listing all namespaces, its group.

    The group is ``rbac.authorization.k8s.io`` (RbacAuthorizationV1Api) or ``""`` for the
    core group (CoreV1Api).
    """

    kind: str
    plural: str
    method: str
    group: str = RBAC_GROUP

    @property
    def api_version(self) -> str:
        """``<group>/v1``, or ``v1`` for the core group."""
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def path(self) -> str:
        """``/apis/<group>/v1/<plural>`` (``/api/v1/<plural>``), which lists all namespaces."""
        return f"/apis/{self.api_version}/{self.plural}" if self.group else f"/api/v1/{self.plural}"

    @property
    def resource(self) -> str:
        """``<plural>.<group>`` (``<plural>`` for the core group) as kubectl names it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = (
    Kind("Role", "roles", "list_role_for_all_namespaces"),
    Kind("ClusterRole", "clusterroles", "list_cluster_role"),
    Kind("RoleBinding", "rolebindings", "list_role_binding_for_all_namespaces"),
    Kind("ClusterRoleBinding", "clusterrolebindings", "list_cluster_role_binding"),
)
KIND_ORDER = {k.kind: i for i, k in enumerate(sorted(KINDS, key=lambda k: k.kind))}
NAMESPACES = Kind("Namespace", "namespaces", "list_namespace", group="")

Progress = Callable[[str, int], None]


class _Expired(Exception):
    """The continue token is too old (410 Gone): the list must start over."""


def api_client(kubeconfig: str | None, context: str | None, in_cluster: bool) -> Any:
    """Build a kubernetes ApiClient from a kubeconfig/context or the in-cluster account.

    Raises:
        ClusterUnreachable: the kubeconfig or in-cluster environment is unusable.
    """
    cfg = k8s_client.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as err:
        if in_cluster:
            where = "in-cluster service account"
        else:
            where = "kubeconfig " + (kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
            if context:
                where += f" (context {context})"
        raise ClusterUnreachable(f"{where}: {_one_line(str(err))}") from err
    # Our own loop retries; urllib3 must raise at once so errors are ours to classify.
    cfg.retries = False
    return k8s_client.ApiClient(cfg)


def fetch(
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    *,
    page_size: int = 500,
    timeout: float = 30,
    progress: Progress | None = None,
    with_namespaces: bool = False,
) -> list[dict[str, Any]]:
    """List every Role, ClusterRole, RoleBinding and ClusterRoleBinding of the cluster.

    Args:
        kubeconfig: kubeconfig path; None uses $KUBECONFIG or ~/.kube/config.
        context: kubeconfig context; None uses the current one.
        in_cluster: use the pod's service account instead of a kubeconfig.
        page_size: ``limit`` of each list request.
        timeout: connect and read timeout of each request, in seconds.
        progress: called with (kind, objects so far) after every page.
        with_namespaces: also list the namespaces, see :func:`namespace_items`.

    Returns:
        The objects as ``kubectl get -o yaml`` items (camelCase, apiVersion and kind set,
        managedFields dropped), kind by kind in the server's order; then, with
        ``with_namespaces``, one name-only Namespace item per namespace.

    Raises:
        ClusterUnreachable: bad kubeconfig, connection or TLS failure, timeout, 401.
        ClusterForbidden: the identity may not list one of the kinds.
        ClusterError: the server kept failing or answered something unreadable.
    """
    api = api_client(kubeconfig, context, in_cluster)
    try:
        return fetch_with(
            api,
            page_size=page_size,
            timeout=timeout,
            progress=progress,
            with_namespaces=with_namespaces,
        )
    finally:
        api.close()


def fetch_with(
    api: Any,
    *,
    page_size: int = 500,
    timeout: float = 30,
    progress: Progress | None = None,
    kinds: Iterable[Kind] = KINDS,
    backoff: float = 0.25,
    with_namespaces: bool = False,
) -> list[dict[str, Any]]:
    """As :func:`fetch`, on an existing ApiClient.

    Args:
        api: a configured ``kubernetes.client.ApiClient``.
        page_size: ``limit`` of each list request.
        timeout: connect and read timeout of each request, in seconds.
        progress: called with (kind, objects so far) after every page.
        kinds: which RBAC kinds to list.
        backoff: first retry delay in seconds; doubles per retry (capped at 5 s) unless the
            server sends Retry-After.
        with_namespaces: also list the namespaces, see :func:`namespace_items`.
    """
    if page_size < 1:
        raise ValueError("page_size must be positive")
    server = str(api.configuration.host)
    out: list[dict[str, Any]] = []
    for kind in kinds:
        out.extend(_list_all(api, server, kind, page_size, timeout, progress, backoff))
    if with_namespaces:
        out.extend(
            namespace_items(
                api, page_size=page_size, timeout=timeout, progress=progress, backoff=backoff
            )
        )
    return out


def namespace_items(
    api: Any,
    *,
    page_size: int = 500,
    timeout: float = 30,
    progress: Progress | None = None,
    backoff: float = 0.25,
) -> list[dict[str, Any]]:
    """The namespaces a RoleBinding can be created in, as name-only Namespace items.

    Terminating namespaces are left out: the apiserver refuses new objects in them.
    Listing namespaces is optional: any failure, a 403 included, is logged as a warning and
    gives ``[]``, which leaves the namespaces unknown.
    """
    server = str(api.configuration.host)
    try:
        listed = _list_all(api, server, NAMESPACES, page_size, timeout, progress, backoff)
    except ClusterError as err:
        reason = (
            "this identity may not list namespaces"
            if isinstance(err, ClusterForbidden)
            else f"cannot list namespaces: {err}"
        )
        log.warning(
            "%s; which namespaces exist is unknown, so RoleBindings may be recommended in "
            "namespaces that do not exist",
            reason,
        )
        return []
    names = sorted(
        str(o["metadata"]["name"])
        for o in listed
        if isinstance(o["metadata"].get("name"), str)
        and (o.get("status") or {}).get("phase") != "Terminating"
    )
    return [_namespace_item(n) for n in names]


def _namespace_item(name: str) -> dict[str, Any]:
    """A Namespace item carrying nothing but its name."""
    return {
        "apiVersion": NAMESPACES.api_version,
        "kind": NAMESPACES.kind,
        "metadata": {"name": name},
    }


def _list_all(
    api: Any,
    server: str,
    kind: Kind,
    page_size: int,
    timeout: float,
    progress: Progress | None,
    backoff: float,
) -> list[dict[str, Any]]:
    """Every object of one kind; restarts when a continue token expires mid-list."""
    for _ in range(MAX_RELISTS + 1):
        items: list[dict[str, Any]] = []
        token = ""
        try:
            while True:
                page = _page(api, server, kind, page_size, token, timeout, backoff)
                items.extend(_item(kind, raw) for raw in page.get("items") or ())
                if progress is not None:
                    progress(kind.kind, len(items))
                token = str((page.get("metadata") or {}).get("continue") or "")
                if not token:
                    return items
        except _Expired:
            log.info(
                "continue token for %s expired after %d objects; relisting", kind.plural, len(items)
            )
    raise ClusterError(
        f"{server}: listing {kind.resource} kept expiring its continue token "
        f"({MAX_RELISTS + 1} attempts); retry with a larger --page-size"
    )


def _page(
    api: Any, server: str, kind: Kind, limit: int, token: str, timeout: float, backoff: float
) -> dict[str, Any]:
    """One list page as a dict, with bounded retries on 429, 5xx and dropped connections."""
    delay = backoff
    for attempt in range(1, MAX_ATTEMPTS + 1):
        retry_after: float | None = None
        try:
            return _get_json(api, kind, limit, token, timeout)
        except ApiException as err:
            status = int(err.status or 0)
            if status == 410 and token:
                raise _Expired() from err
            if status not in RETRYABLE or attempt == MAX_ATTEMPTS:
                raise _api_error(err, server, kind) from err
            retry_after = _retry_after(err)
            problem = f"HTTP {status}"
        except urllib3.exceptions.NewConnectionError as err:
            # Refused or unresolvable: retrying will not help (urllib3 files this error
            # under TimeoutError, so it is caught first).
            raise ClusterUnreachable(f"cannot reach {server}: {_describe(err, timeout)}") from err
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError) as err:
            if attempt == MAX_ATTEMPTS:
                raise ClusterUnreachable(
                    f"{server}: listing {kind.resource} failed {MAX_ATTEMPTS} times: "
                    f"{_describe(err, timeout)}"
                ) from err
            problem = _describe(err, timeout)
        except urllib3.exceptions.HTTPError as err:
            raise ClusterUnreachable(f"cannot reach {server}: {_describe(err, timeout)}") from err
        wait = min(retry_after if retry_after is not None else delay, 10.0)
        log.info("list %s: %s; retry %d in %.2fs", kind.plural, problem, attempt, wait)
        time.sleep(wait)
        delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _get_json(api: Any, kind: Kind, limit: int, token: str, timeout: float) -> dict[str, Any]:
    """One list request through the generated client, body decoded by us.

    ``_preload_content=False`` returns the raw response: its JSON is already what
    ``kubectl get -o yaml`` prints, and decoding it directly is an order of magnitude
    faster than building the client's model objects and serialising them back.
    """
    client = k8s_client.RbacAuthorizationV1Api if kind.group else k8s_client.CoreV1Api
    method = getattr(client(api), kind.method)
    kwargs: dict[str, Any] = {"limit": limit}
    if token:
        kwargs["_continue"] = token
    resp = method(**kwargs, _preload_content=False, _request_timeout=(timeout, timeout))
    try:
        data = resp.data
    finally:
        # Unread-content responses keep their connection until released; give it back to
        # the pool so the next page reuses it.
        resp.release_conn()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise ClusterError(f"{api.configuration.host}{kind.path}: response is not JSON") from err
    if not isinstance(doc, dict):
        raise ClusterError(f"{api.configuration.host}{kind.path}: response is not a list")
    return doc


def _item(kind: Kind, raw: dict[str, Any]) -> dict[str, Any]:
    """A list item as ``kubectl get -o yaml`` shows it: apiVersion and kind first."""
    meta = dict(raw.get("metadata") or {})
    meta.pop("managedFields", None)
    out: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}
    out.update((k, v) for k, v in raw.items() if k not in ("apiVersion", "kind", "metadata"))
    return out


def _api_error(err: ApiException, server: str, kind: Kind) -> ClusterError:
    status = int(err.status or 0)
    message = _status_message(err)
    if status == 401:
        return ClusterUnreachable(
            f"{server}: credentials rejected (401 Unauthorized); "
            "refresh the kubeconfig's token or certificate"
        )
    if status == 403:
        user = re.search(r'User "([^"]*)"', message)
        detail = f'as User "{user.group(1)}"' if user else message
        return ClusterForbidden("list", f"{kind.resource} (all namespaces)", detail)
    if status == 0:
        return ClusterUnreachable(f"cannot reach {server}: {_one_line(str(err.reason))}")
    return ClusterError(
        f"{server}: listing {kind.resource} failed with HTTP {status}: {message or err.reason}"
    )


def _status_message(err: ApiException) -> str:
    try:
        doc = orjson.loads(err.body or b"")
    except (orjson.JSONDecodeError, TypeError):
        return _one_line(str(err.body or ""))[:300]
    return _one_line(str(doc.get("message", ""))) if isinstance(doc, dict) else ""


def _retry_after(err: ApiException) -> float | None:
    value = (err.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _describe(err: BaseException, timeout: float) -> str:
    if isinstance(err, urllib3.exceptions.TimeoutError) and not isinstance(
        err, urllib3.exceptions.NewConnectionError
    ):
        return f"no answer within {timeout:g}s"
    text = str(getattr(err, "reason", None) or err)
    # urllib3 prefixes the connection object's repr; keep only the cause.
    text = re.sub(r"^(<[^>]*>|\w+Connection(Pool)?\([^)]*\)):\s*", "", text)
    text = text.replace("Failed to establish a new connection: ", "")
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


TOP_ORDER = ("apiVersion", "kind", "metadata", "aggregationRule", "rules", "roleRef", "subjects")
META_ORDER = ("name", "namespace", "labels", "annotations")
RULE_ORDER = ("apiGroups", "resources", "resourceNames", "nonResourceURLs", "verbs")
SUBJECT_ORDER = ("kind", "apiGroup", "name", "namespace")


def to_list_document(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Wrap fetched objects in a ``kind: List`` for a snapshot file.

    Volatile metadata is dropped, keys are put in manifest order (unknown keys keep their
    place after the known ones), and objects are sorted by kind (ClusterRole,
    ClusterRoleBinding, Role, RoleBinding, then any other kind such as Namespace), namespace
    and name, so equal clusters give equal bytes.
    """
    cleaned = []
    for obj in items:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in VOLATILE_METADATA}
        out = _ordered({**obj, "metadata": _ordered(meta, META_ORDER)}, TOP_ORDER)
        if isinstance(out.get("rules"), list):
            out["rules"] = [_ordered(r, RULE_ORDER) for r in out["rules"]]
        if isinstance(out.get("subjects"), list):
            out["subjects"] = [_ordered(x, SUBJECT_ORDER) for x in out["subjects"]]
        cleaned.append(out)
    cleaned.sort(
        key=lambda o: (
            KIND_ORDER.get(str(o.get("kind")), len(KIND_ORDER)),
            str(o["metadata"].get("namespace", "")),
            str(o["metadata"].get("name", "")),
        )
    )
    return {"apiVersion": "v1", "kind": "List", "items": cleaned}


def _ordered(obj: Any, order: tuple[str, ...]) -> Any:
    if not isinstance(obj, dict):
        return obj
    out = {k: obj[k] for k in order if k in obj}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out
