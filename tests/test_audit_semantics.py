"""Authorizer attributes, identity, decision and reason exactly as the apiserver had them."""

from __future__ import annotations

import pytest
from audit_samples import event, line

from rbac_advisor.audit import parse_record, useragent
from rbac_advisor.audit.reason import parse_reason
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.useragent import parse as parse_ua
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    BindingKey,
    BindingKind,
    Identity,
    RoleKey,
    RoleKind,
    Subject,
)


def ev(**kw: object):
    return parse_record(event(**kw)).events[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "verb, uri, ref, expected",
    [
        # create: objectRef carries the body's name; RBAC never saw it
        (
            "create",
            "/api/v1/namespaces/ns/configmaps?fieldManager=kubectl-create",
            {"resource": "configmaps", "namespace": "ns", "name": "cm1"},
            Access("create", "", "configmaps", "", "ns", ""),
        ),
        # create on a subresource names the object in the URL
        (
            "create",
            "/api/v1/namespaces/ns/pods/p/exec?command=ls",
            {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
            Access("create", "", "pods", "exec", "ns", "p"),
        ),
        # body-filled namespace on a cluster-URL create: the URL had none
        (
            "create",
            "/api/v1/pods",
            {"resource": "pods", "namespace": "default", "name": "x"},
            Access("create", "", "pods", "", "", ""),
        ),
        (
            "deletecollection",
            "/api/v1/namespaces/ns/pods",
            {"resource": "pods", "namespace": "ns"},
            Access("deletecollection", "", "pods", "", "ns", ""),
        ),
        (
            "list",
            "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3Dcm1",
            {"resource": "configmaps", "namespace": "ns", "name": "cm1"},
            Access("list", "", "configmaps", "", "ns", "cm1"),
        ),
        # the apiserver reads the decoded path
        (
            "get",
            "/api/v1/namespaces/n%73/pods/p%2D1",
            None,
            Access("get", "", "pods", "", "ns", "p-1"),
        ),
        # only the first fieldSelector counts (ListOptions keeps the first value)
        (
            "list",
            "/api/v1/namespaces/ns/pods?fieldSelector=status.phase%3DRunning"
            "&fieldSelector=metadata.name%3Dx",
            {"resource": "pods", "namespace": "ns"},
            Access("list", "", "pods", "", "ns", ""),
        ),
        (
            "watch",
            "/api/v1/namespaces/ns/pods?fieldSelector=status.phase%3DRunning,metadata.name%3Dx",
            None,
            Access("watch", "", "pods", "", "ns", "x"),
        ),
        # the apiserver writes objectRef.name from the authorizer's attributes: an objectRef
        # without a name means the selector narrowed nothing (here: limit=abc fails the
        # options, which the URI alone would not tell)
        (
            "list",
            "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3Dcm1&limit=abc",
            {"resource": "configmaps", "namespace": "ns"},
            Access("list", "", "configmaps", "", "ns", ""),
        ),
        # the deprecated /proxy/ path has no subresource (specialVerbsNoSubresources)
        (
            "proxy",
            "/api/v1/proxy/namespaces/ns1/pods/p1/a/b",
            None,
            Access("proxy", "", "pods", "", "ns1", "p1"),
        ),
        # a verb from a /watch/ path never takes the selector's name (requestinfo.go)
        (
            "watch",
            "/api/v1/watch/namespaces/ns/pods?fieldSelector=metadata.name%3Dp1",
            None,
            Access("watch", "", "pods", "", "ns", ""),
        ),
        # a name that is no valid path segment does not narrow the request
        (
            "list",
            "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Da%252Fb",
            None,
            Access("list", "", "pods", "", "ns", ""),
        ),
        (
            "list",
            "/api/v1/namespaces/ns/configmaps?limit=500",
            {"resource": "configmaps", "namespace": "ns"},
            Access("list", "", "configmaps", "", "ns", ""),
        ),
        (
            "watch",
            "/apis/apps/v1/deployments?watch=true",
            {"resource": "deployments", "apiGroup": "apps"},
            Access("watch", "apps", "deployments"),
        ),
        # GET of a Namespace is attributed to that namespace (A1)
        (
            "get",
            "/api/v1/namespaces/team-a",
            {"resource": "namespaces", "name": "team-a"},
            Access("get", "", "namespaces", "", "team-a", "team-a"),
        ),
        (
            "create",
            "/api/v1/namespaces",
            {"resource": "namespaces", "name": "team-b"},
            Access("create", "", "namespaces", "", "", ""),
        ),
        (
            "get",
            "/healthz?verbose=true",
            None,
            Access("get", path="/healthz", resource_request=False),
        ),
        ("get", "/apis/apps/v1", None, Access("get", path="/apis/apps/v1", resource_request=False)),
        (
            "get",
            "/logs/kube%2Dapiserver.log?x=%41",
            None,
            Access("get", path="/logs/kube-apiserver.log", resource_request=False),
        ),
    ],
)
def test_authorizer_attributes(
    verb: str, uri: str, ref: dict[str, str] | None, expected: Access
) -> None:
    e = event(verb=verb, uri=uri, ref=ref)
    if ref is None:
        e.pop("objectRef", None)
    assert parse_record(e).events[0].access == expected


@pytest.mark.parametrize(
    "query, name",
    [
        ("fieldSelector=metadata.name%3Dx", "x"),
        ("fieldSelector=metadata.name%3D%3Dx", "x"),
        ("fieldSelector=metadata.name!%3Dx", ""),
        # terms are sorted before the first metadata.name term is taken
        ("fieldSelector=metadata.name%3Db,metadata.name%3Da", "a"),
        # one term the parser cannot read fails the selector: the request is a plain list
        ("fieldSelector=metadata.name%3Dx,bad", ""),
        ("fieldSelector=metadata.name%3Da%5Cb", ""),
        ("fieldSelector=metadata.name%3Da%3Db", ""),
        # escaped commas and equal signs belong to the value
        ("fieldSelector=metadata.name%3Da%5C%2Cb", "a,b"),
        ("fieldSelector=metadata.name%3Da%5C%3Db", "a=b"),
        # no spaces are trimmed: "metadata.name " is another field
        ("fieldSelector=metadata.name+%3Dx", ""),
        # Go's query parser drops a pair with a semicolon or a bad escape
        ("fieldSelector=metadata.name%3Dx;y", ""),
        ("fieldSelector=metadata.name%3Dx%zz", ""),
        ("fieldSelector=metadata.name%3Dx%zz&fieldSelector=metadata.name%3Dy", "y"),
        ("limit=1&fieldSelector=metadata.name%3Dx", "x"),
    ],
)
def test_field_selector_name_as_the_apiserver_parses_it(query: str, name: str) -> None:
    # A log without objectRef (rewritten or exported): the name comes from the URI.
    e = event(verb="list", uri=f"/api/v1/namespaces/ns/pods?{query}")
    e.pop("objectRef")
    assert parse_record(e).events[0].access == Access("list", "", "pods", "", "ns", name)


def test_resource_request_without_objectref_is_derived_from_the_uri() -> None:
    e = event(uri="/api/v1/namespaces/ns/pods/p/log?follow=true")
    del e["objectRef"]
    assert parse_record(e).events[0].access == Access("get", "", "pods", "log", "ns", "p")


def test_a_request_with_another_http_method_has_an_empty_verb() -> None:
    # requestinfo.go maps OPTIONS, TRACE... on a resource path to verb "", which RBAC
    # authorizes (only verbs ["*"] or [""] match it) and the audit log records as is.
    ref = {"resource": "pods", "namespace": "default"}
    allowed = ev(verb="", uri="/api/v1/namespaces/default/pods", ref=ref, code=405)
    assert allowed.access == Access("", "", "pods", "", "default", "")
    assert allowed.decision is Decision.ALLOW
    scanner = ev(verb="", uri="/api/v1/namespaces/default/pods", ref=ref, user="", groups=[],
                 code=401, decision=None)  # fmt: skip
    assert scanner.code == 401 and scanner.identity.user == ""


def test_impersonation_user_with_groups() -> None:
    e = ev(
        user="admin",
        groups=["system:masters", "system:authenticated"],
        imp={"username": "bob", "groups": ["dev"], "uid": "u-1", "extra": {"scopes": ["view"]}},
    )
    assert e.identity.user == "bob"
    assert e.identity.groups == ("dev", "system:authenticated")  # added like the apiserver
    assert e.impersonator is not None and e.impersonator.user == "admin"
    assert e.impersonation == (
        Access("impersonate", "", "users", "", "", "bob"),
        Access("impersonate", "", "groups", "", "", "dev"),
        Access("impersonate", "authentication.k8s.io", "uids", "", "", "u-1"),
        Access("impersonate", "authentication.k8s.io", "userextras", "scopes", "", "view"),
    )


@pytest.mark.parametrize(
    ("target", "groups", "checked"),
    [
        # impersonation.go / mode.go append system:authenticated when it is absent: last, once
        ("bob", ["dev", "system:authenticated"], ["dev"]),
        ("bob", ["system:authenticated", "dev"], ["dev", "system:authenticated"]),
        ("bob", ["system:authenticated"], []),  # requested alone or added: cannot tell
        ("bob", ["system:authenticated", "system:authenticated"], ["system:authenticated"]),
        # with system:unauthenticated requested nothing is added: both were requested
        (
            "bob",
            ["system:unauthenticated", "system:authenticated"],
            ["system:authenticated", "system:unauthenticated"],
        ),
        # for system:anonymous the filter adds system:unauthenticated, never authenticated
        (
            "system:anonymous",
            ["system:authenticated", "system:unauthenticated"],
            ["system:authenticated"],
        ),  # fmt: skip
        ("system:anonymous", ["system:unauthenticated", "dev"], ["dev", "system:unauthenticated"]),
        ("system:anonymous", ["system:unauthenticated"], []),
    ],
)
def test_a_group_the_apiserver_adds_is_told_from_a_requested_one(
    target: str, groups: list[str], checked: list[str]
) -> None:
    e = ev(user="admin", groups=["system:masters"], imp={"username": target, "groups": groups})
    assert e.impersonation == (
        Access("impersonate", "", "users", "", "", target),
        *(Access("impersonate", "", "groups", "", "", g) for g in checked),
    )


def test_impersonating_a_service_account_fills_its_groups() -> None:
    e = ev(user="admin", imp={"username": "system:serviceaccount:ns1:sa1"})
    assert e.identity.groups == (
        "system:authenticated",
        "system:serviceaccounts",
        "system:serviceaccounts:ns1",
    )
    assert e.impersonation == (Access("impersonate", "", "serviceaccounts", "", "ns1", "sa1"),)
    # The pair in the apiserver's order reads as filled in; in any other order it was asked.
    filled = ["system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"]
    asked = ["system:serviceaccounts:ns1", "system:serviceaccounts", "system:authenticated"]
    imp = {"username": "system:serviceaccount:ns1:sa1"}
    assert ev(user="admin", imp={**imp, "groups": filled}).impersonation == e.impersonation
    assert ev(user="admin", imp={**imp, "groups": asked}).impersonation == (
        *e.impersonation,
        Access("impersonate", "", "groups", "", "", "system:serviceaccounts"),
        Access("impersonate", "", "groups", "", "", "system:serviceaccounts:ns1"),
    )


@pytest.mark.parametrize(
    "user",
    [
        "system:serviceaccount:Team:sa1",  # the namespace must be a DNS-1123 label
        "system:serviceaccount:ns1:My_SA",  # the name a DNS-1123 subdomain
        "system:serviceaccount:ns1:a:b",
        "system:serviceaccount:ns1:sa1\n",
        "system:serviceaccount:" + "n" * 64 + ":sa1",
    ],
)
def test_an_invalid_service_account_name_is_impersonated_as_a_user(user: str) -> None:
    # serviceaccount.SplitUsername refuses it: the impersonation filter checks users, and
    # adds no service-account groups.
    e = ev(user="admin", imp={"username": user})
    assert Identity(user).service_account is None
    assert e.identity.groups == ("system:authenticated",)
    assert e.impersonation == (Access("impersonate", "", "users", "", "", user),)


def test_impersonated_unauthenticated_group_suppresses_authenticated() -> None:
    e = ev(imp={"username": "x", "groups": ["system:unauthenticated"]})
    assert e.identity.groups == ("system:unauthenticated",)


def test_constrained_impersonation() -> None:
    e = ev(
        imp={"username": "system:serviceaccount:ns1:sa1"},
        authenticationMetadata={"impersonationConstraint": "impersonate:serviceaccount"},
    )
    assert e.impersonation == (
        # constrained modes check the identity in authentication.k8s.io (mode.go)
        Access(
            "impersonate:serviceaccount",
            "authentication.k8s.io",
            "serviceaccounts",
            "",
            "ns1",
            "sa1",
        ),
        Access("impersonate-on:serviceaccount:get", "", "pods", "", "ns", "p"),
    )


def test_refused_impersonation_records_the_refused_check() -> None:
    d = event(user="eve", code=403, decision=None)
    d["responseStatus"] = {
        "code": 403,
        "reason": "Forbidden",
        "status": "Failure",
        "message": 'users "admin" is forbidden: User "eve" cannot impersonate resource "users" '
        'in API group "" at the cluster scope',
    }
    e = parse_record(d).events[0]
    assert e.decision is Decision.FORBID and e.impersonator is None
    assert e.impersonation == (Access("impersonate", "", "users", "", "", "admin"),)
    assert e.access == Access("get", "", "pods", "", "ns", "p")


@pytest.mark.parametrize(
    "code, reason, message, decision",
    [
        (
            403,
            "Forbidden",
            'pods "p" is forbidden: User "a" cannot get resource "pods"',
            Decision.FORBID,
        ),
        (403, "Forbidden", "", Decision.FORBID),
        (
            403,
            "Forbidden",
            'pods "p" is forbidden: violates PodSecurity "restricted:latest"',
            Decision.ALLOW,
        ),
        (404, "NotFound", "", Decision.ALLOW),
        (409, "Conflict", "", Decision.ALLOW),
        (429, "TooManyRequests", "", Decision.UNKNOWN),
        (401, "Unauthorized", "", Decision.UNKNOWN),
    ],
)
def test_decision_without_annotations(
    code: int, reason: str, message: str, decision: Decision
) -> None:
    d = event(decision=None, code=code)
    d["responseStatus"] = {"code": code, "reason": reason, "message": message}
    assert parse_record(d).events[0].decision is decision


def test_unauthenticated_event_has_no_user() -> None:
    d = event(user="", groups=[], code=401, decision=None, stage="ResponseStarted")
    e = parse_record(d).events[0]
    assert e.code == 401 and e.identity.user == ""


def test_request_received_has_unknown_decision() -> None:
    assert ev(stage="RequestReceived").decision is Decision.UNKNOWN


@pytest.mark.parametrize(
    "text, binding, role, subject",
    [
        (
            'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
            '"system:discovery" to Group "system:authenticated"',
            BindingKey(BindingKind.CLUSTER_ROLE_BINDING, "system:discovery"),
            RoleKey(RoleKind.CLUSTER_ROLE, "system:discovery"),
            Subject("Group", "system:authenticated", "", "rbac.authorization.k8s.io"),
        ),
        (
            'RBAC: allowed by RoleBinding "rb1/ns1" of Role "r1" to ServiceAccount "sa1/ns2"',
            BindingKey(BindingKind.ROLE_BINDING, "rb1", "ns1"),
            RoleKey(RoleKind.ROLE, "r1", "ns1"),
            Subject("ServiceAccount", "sa1", "ns2"),
        ),
        (
            'RBAC: allowed by RoleBinding "rb1/ns1" of ClusterRole "view" to User "bob"',
            BindingKey(BindingKind.ROLE_BINDING, "rb1", "ns1"),
            RoleKey(RoleKind.CLUSTER_ROLE, "view"),
            Subject("User", "bob", "", "rbac.authorization.k8s.io"),
        ),
    ],
)
def test_reason_parsing(text: str, binding: BindingKey, role: RoleKey, subject: Subject) -> None:
    r = parse_reason(text)
    assert r is not None and (r.binding, r.role, r.subject) == (binding, role, subject)
    assert ev(reason=text).reason == r


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RBAC: allowed by ClusterRoleBinding system:public-info-viewer",
        'RBAC: allowed by RoleBinding "nonamespace" of Role "r" to User "u"',
        'RBAC: allowed by ClusterRoleBinding "c" of Role "r" to User "u"',
        "internal error",
    ],
)
def test_unparsable_reasons_are_kept_raw(text: str) -> None:
    assert parse_reason(text) is None
    e = ev(reason=text)
    assert e.reason is None and e.raw_reason == text


def test_forbid_never_carries_a_reason_ref() -> None:
    r = 'RBAC: allowed by RoleBinding "rb1/ns1" of Role "r1" to User "alice"'
    assert ev(decision="forbid", code=403, reason=r).reason is None


@pytest.mark.parametrize(
    "ua, tool, version",
    [
        ("kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234", "kubectl", "v1.36.3"),
        ("kubectl.exe/v1.30.0 (windows/amd64) kubernetes/abc", "kubectl", "v1.30.0"),
        (
            "kube-controller-manager/v1.19.8 (linux/amd64) kubernetes/fd5d415"
            "/system:serviceaccount:kube-system:generic-garbage-collector",
            "kube-controller-manager",
            "v1.19.8",
        ),
        ("Helm/3.15.2", "helm", "3.15.2"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "browser", ""),
        ("HashiCorp/1.0 Terraform/1.5.7", "terraform", "1.5.7"),
        ("terraform-provider-kubernetes/2.23.0", "terraform", "2.23.0"),
        (
            "argocd-application-controller/v2.11.0 (linux/amd64) kubernetes/abcdef0",
            "argocd",
            "v2.11.0",
        ),
        ("OpenAPI-Generator/29.0.0/python", "kubernetes-python", "29.0.0"),
        ("Go-http-client/2.0", "go-http-client", "2.0"),
        ("GoogleKubernetesEngineFrontend", "googlekubernetesenginefrontend", ""),
        ("", "", ""),
        ("evil/1.0<script>\u200b\x1b[31m (x)", "evil", "1.0-script-31m"),
    ],
)
def test_user_agents(ua: str, tool: str, version: str) -> None:
    assert parse_ua(ua) == (tool, version)
    label = useragent.label(ua)
    assert label == (f"{tool}/{version}" if version else tool)
    assert useragent.name_of(label) == tool


def test_exec_command_is_redacted_everywhere() -> None:
    uri = "/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=echo+s3cr3t&container=c"
    assert redact_uri(uri) == (
        "/api/v1/namespaces/ns/pods/p/exec?command=REDACTED&command=REDACTED&command=REDACTED&container=c"
    )
    e = ev(
        verb="create",
        uri=uri,
        ref={"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
    )
    assert "s3cr3t" not in repr(e) and "REDACTED" in e.uri


@pytest.mark.parametrize(
    "query",
    [
        "comm%61nd=s3cr3t",
        "%63ommand=s3cr3t",
        "%63%6F%6D%6D%61%6E%64=s3cr3t",
        "x=1&comm%61nd=s3cr3t",
        # a request URI has no fragment: "#" belongs to the value the command runs with
        "command=sh#s3cr3t",
    ],
)
def test_an_encoded_command_name_is_redacted_too(query: str) -> None:
    """The apiserver decodes parameter names (Go's url.ParseQuery): these run a command."""
    uri = f"/api/v1/namespaces/ns/pods/p/exec?{query}&stdin=true"
    assert "s3cr3t" not in redact_uri(uri) and redact_uri(uri).endswith("=REDACTED&stdin=true")
    ref = {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"}
    from rbac_advisor import usage
    from rbac_advisor.audit import native

    d = event(verb="create", uri=uri, ref=ref)
    fast = native.decode_fast(line(d))
    assert fast is not None
    for e in (parse_record(d).events[0], fast[0]):
        assert "s3cr3t" not in repr(e)
    assert "s3cr3t" not in usage.dumps(usage.build(parse_record(d).events))


def test_other_encoded_parameters_are_kept() -> None:
    uri = "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&commands=x&a%3Dcommand=y"
    assert redact_uri(uri) == uri


def test_bodies_are_never_stored() -> None:
    d = event(
        verb="create",
        uri="/api/v1/namespaces/ns/secrets",
        ref={"resource": "secrets", "namespace": "ns", "name": "db"},
        requestObject={"kind": "Secret", "stringData": {"password": "hunter2-body"}},
        responseObject={"kind": "Secret", "data": {"password": "aHVudGVyMg=="}},
    )
    from rbac_advisor.audit import native

    for e in (parse_record(d).events[0], native.decode_fast(line(d))[0]):  # type: ignore[index]
        text = repr(e)
        assert "hunter2-body" not in text and "aHVudGVyMg==" not in text


def test_saved_model_holds_no_body_and_no_command() -> None:
    from rbac_advisor import usage

    d = event(
        verb="create",
        uri="/api/v1/namespaces/ns/pods/p/exec?command=cat&command=tok3n",
        ref={"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
        requestObject={"stringData": {"password": "hunter2-body"}},
    )
    text = usage.dumps(usage.build(parse_record(d).events))
    assert "hunter2-body" not in text and "tok3n" not in text and "command=REDACTED" in text


def test_a_websocket_session_refused_by_its_create_check_is_no_allowed_create() -> None:
    """The annotation decides the get; the later create check answered 403."""
    from rbac_advisor import usage

    ws = {
        "verb": "get",
        "uri": "/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&tty=true",
        "ref": {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
    }
    refused = event(
        audit_id="1",
        responseStatus={
            "code": 403,
            "reason": "Forbidden",
            "message": 'pods "p" is forbidden: User "alice" cannot create resource "pods/exec" '
            'in API group "" in the namespace "ns"',
        },
        **ws,
    )
    opened = event(audit_id="2", code=101, **ws)
    for d, create in ((refused, Decision.FORBID), (opened, Decision.ALLOW)):
        u = usage.build(parse_record(d).events)
        got = {(k.access.verb, k.decision) for k in u.entries}
        assert got == {("get", Decision.ALLOW), ("create", create)}
        assert [s.decision for s in u.sessions] == [create]


def test_reason_names_are_go_quoted() -> None:
    """rbac.go writes every name with %q: quotes and backslashes come escaped."""
    text = (
        'RBAC: allowed by RoleBinding "ops\\\\team/ns1" of ClusterRole "r\\"1" '
        'to User "say \\"hi\\"\\t\\u200b"'
    )
    r = parse_reason(text)
    assert r is not None
    assert r.binding == BindingKey(BindingKind.ROLE_BINDING, "ops\\team", "ns1")
    assert r.role == RoleKey(RoleKind.CLUSTER_ROLE, 'r"1')
    assert r.subject == Subject("User", 'say "hi"\t\u200b', "", "rbac.authorization.k8s.io")
    assert (
        parse_reason('RBAC: allowed by ClusterRoleBinding "a\\qb" of ClusterRole "r" to User "u"')
        is None
    )


@pytest.mark.parametrize(
    "name", ["ops\\team", 'say "hi"', "tab\there", "café", "zw\u200bsp", "smile\U0001f600", "a/b"]
)
def test_our_reason_strings_quote_as_the_apiserver_and_parse_back(name: str) -> None:
    from rbac_advisor.rbac import Grant, PolicyRule

    for binding, subject in (
        (BindingKey(BindingKind.CLUSTER_ROLE_BINDING, name), Subject("Group", name, "", RBAC)),
        (BindingKey(BindingKind.ROLE_BINDING, name, "ns"), Subject("ServiceAccount", name, "ns")),
    ):
        grant = Grant(binding, RoleKey(RoleKind.CLUSTER_ROLE, name), 0, PolicyRule(), subject)
        text = grant.reason()
        assert "\t" not in text and "\u200b" not in text
        parsed = parse_reason(text)
        if "/" in name and subject.kind == "ServiceAccount":
            continue  # "name/ns" with a slash in the name reads back split at the last one
        assert parsed is not None
        assert (parsed.binding, parsed.role, parsed.subject) == (binding, grant.role, subject)


RBAC = "rbac.authorization.k8s.io"
