"""Constrained impersonation (ConstrainedImpersonation, beta in 1.36): the checks recorded.

Expected messages and authorizer attributes are those of the apiserver's own tests,
staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation/
constrained_impersonation_test.go (kubernetes/kubernetes 0ae00ef5a026), and the rules of
mode.go (4d7ca8687c66) in the same directory.
"""

from __future__ import annotations

from typing import Any

import pytest
from audit_samples import event

from rbac_advisor.audit import parse_record
from rbac_advisor.audit.normalise import denied_impersonation
from rbac_advisor.events import Decision, Event
from rbac_advisor.rbac import Access

AUTHN = "authentication.k8s.io"


def request(resource: str, verb: str = "get", uri: str = "") -> dict[str, Any]:
    """Audit fields of ``<verb> <resource> "foo" in namespace "bar"`` (the tests' requests)."""
    ref = {"resource": resource, "namespace": "bar", "name": "foo", "apiVersion": "v1"}
    return {"verb": verb, "uri": uri or f"/api/v1/namespaces/bar/{resource}/foo", "ref": ref}


# getPodRequest / getSecretRequest of constrained_impersonation_test.go.
GET_POD = request("pods")
GET_SECRET = request("secrets")
ON_GET_POD = ("", "pods", "", "bar", "foo")


def impersonated(
    requestor: str, imp: dict[str, Any], constraint: str = "", req: dict[str, Any] = GET_POD
) -> Event:
    """The ResponseComplete event of an allowed impersonated request."""
    extra: dict[str, Any] = {}
    if constraint:
        extra["authenticationMetadata"] = {"impersonationConstraint": constraint}
    d = event(user=requestor, groups=["system:authenticated"], imp=imp, **req, **extra)
    e = parse_record(d).events[0]
    assert e.impersonator is not None and e.impersonator.user == requestor
    return e


def refused(requestor: str, message: str, req: dict[str, Any] = GET_POD) -> Event:
    """The ResponseComplete event of a request the impersonation filter answered 403."""
    d = event(user=requestor, groups=["system:authenticated"], code=403, decision=None, **req)
    d["responseStatus"] = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "code": 403,
    }
    return parse_record(d).events[0]


# --- allowed: the checks the impersonator exercised ---------------------------------------


def test_serviceaccount_mode_checks_the_service_account_under_authentication_group() -> None:
    # impersonating-sa-allowed: the username check keeps usernameAndGroupGV
    # (authentication.k8s.io) when the resource becomes serviceaccounts.
    e = impersonated(
        "sa-impersonater",
        {
            "username": "system:serviceaccount:default:default",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated",
            ],
        },
        "impersonate:serviceaccount",
    )
    assert e.impersonation == (
        Access("impersonate:serviceaccount", AUTHN, "serviceaccounts", "", "default", "default"),
        Access("impersonate-on:serviceaccount:get", *ON_GET_POD),
    )


def test_arbitrary_node_mode_checks_the_node_and_no_groups() -> None:
    # impersonating-node-allowed: system:nodes is set by the apiserver, never checked.
    e = impersonated(
        "node-impersonater",
        {"username": "system:node:node1", "groups": ["system:nodes", "system:authenticated"]},
        "impersonate:arbitrary-node",
    )
    assert e.identity.groups == ("system:authenticated", "system:nodes")
    assert e.impersonation == (
        Access("impersonate:arbitrary-node", AUTHN, "nodes", "", "", "node1"),
        Access("impersonate-on:arbitrary-node:get", *ON_GET_POD),
    )


def test_associated_node_mode_checks_every_node_at_once() -> None:
    # allowed-associate-node: impersonate:associated-node is authorized with Name "*" (the
    # cache ignores the node name); impersonate-on keeps the request's own attributes.
    e = impersonated(
        "system:serviceaccount:default:default",
        {"username": "system:node:node1", "groups": ["system:nodes", "system:authenticated"]},
        "impersonate:associated-node",
        GET_SECRET,
    )
    assert e.impersonation == (
        Access("impersonate:associated-node", AUTHN, "nodes", "", "", "*"),
        Access("impersonate-on:associated-node:get", "", "secrets", "", "bar", "foo"),
    )


def test_user_info_mode_checks_the_user() -> None:
    # impersonating-user-get-allowed-create-disallowed, first request
    e = impersonated(
        "user-impersonater",
        {"username": "anyone", "groups": ["system:authenticated"]},
        "impersonate:user-info",
    )
    assert e.impersonation == (
        Access("impersonate:user-info", AUTHN, "users", "", "", "anyone"),
        Access("impersonate-on:user-info:get", *ON_GET_POD),
    )


def test_many_groups_are_recorded_one_by_one() -> None:
    # many-groups-wildcard-allowed: with 4 groups the apiserver first asks groups "*" and,
    # if allowed, nothing more. Granting the four names keeps the request working (the "*"
    # check fails and the four single checks pass) without allowing every group.
    e = impersonated(
        "many-groups-impersonater",
        {
            "username": "bob",
            "groups": ["group1", "group2", "group3", "group4", "system:authenticated"],
        },
        "impersonate:user-info",
    )
    assert e.impersonation == (
        Access("impersonate:user-info", AUTHN, "users", "", "", "bob"),
        *(
            Access("impersonate:user-info", AUTHN, "groups", "", "", f"group{i}")
            for i in range(1, 5)
        ),
        Access("impersonate-on:user-info:get", *ON_GET_POD),
    )


def test_many_extra_keys_are_recorded_one_by_one() -> None:
    # many-extras-wildcard-allowed: 4 keys, wildcard userextras/* "*" tried first.
    keys = [f"scopes.example.com/key{i}" for i in range(1, 5)]
    e = impersonated(
        "many-extras-impersonater",
        {
            "username": "alice",
            "groups": ["system:authenticated"],
            "extra": {k: [f"val{k[-1]}"] for k in keys},
        },
        "impersonate:user-info",
    )
    assert e.impersonation == (
        Access("impersonate:user-info", AUTHN, "users", "", "", "alice"),
        *(Access("impersonate:user-info", AUTHN, "userextras", k, "", f"val{k[-1]}") for k in keys),
        Access("impersonate-on:user-info:get", *ON_GET_POD),
    )


def test_many_extra_values_record_the_checks_made_when_the_wildcard_is_refused() -> None:
    # allowed-userextras: the wildcard check is denied, then each of the 7 values is
    # checked and allowed; those single checks are exactly what is recorded.
    values = ["scope-a", "scope-b", "5", "4", "3", "2", "1"]
    e = impersonated(
        "user-impersonater",
        {
            "username": "system:admin",
            "groups": ["system:authenticated"],
            "extra": {"pandas.io/scopes": values},
        },
        "impersonate:user-info",
    )
    assert e.impersonation == (
        Access("impersonate:user-info", AUTHN, "users", "", "", "system:admin"),
        *(
            Access("impersonate:user-info", AUTHN, "userextras", "pandas.io/scopes", "", v)
            for v in sorted(values)
        ),
        Access("impersonate-on:user-info:get", *ON_GET_POD),
    )


def test_user_info_checks_groups_uid_and_extra_under_their_groups() -> None:
    e = impersonated(
        "user-impersonater",
        {
            "username": "system:admin",
            "uid": "u-1",
            "groups": ["extra-setter-scopes", "system:authenticated"],
            "extra": {"pandas.io/scopes": ["scope-a"]},
        },
        "impersonate:user-info",
    )
    assert e.impersonation == (
        Access("impersonate:user-info", AUTHN, "users", "", "", "system:admin"),
        Access("impersonate:user-info", AUTHN, "groups", "", "", "extra-setter-scopes"),
        Access("impersonate:user-info", AUTHN, "uids", "", "", "u-1"),
        Access("impersonate:user-info", AUTHN, "userextras", "pandas.io/scopes", "", "scope-a"),
        Access("impersonate-on:user-info:get", *ON_GET_POD),
    )


@pytest.mark.parametrize(
    "username",
    [
        "system:node:Node_1",  # not a DNS subdomain
        "system:node:",
        "system:node:" + "a" * 254,  # longer than 253
    ],
)
def test_invalid_node_name_is_an_ordinary_user(username: str) -> None:
    # mode.go isNodeUsername: the name must pass NameIsDNSSubdomain, otherwise only
    # user-info applies and the username is checked as users.
    e = impersonated(
        "user-impersonater",
        {"username": username, "groups": ["system:authenticated"]},
        "impersonate:user-info",
    )
    assert e.impersonation[0] == Access("impersonate:user-info", AUTHN, "users", "", "", username)


def test_longest_valid_node_name_is_a_node() -> None:
    name = ".".join(["a" * 63] * 4)[:253].rstrip(".")
    e = impersonated(
        "node-impersonater",
        {"username": f"system:node:{name}", "groups": ["system:nodes", "system:authenticated"]},
        "impersonate:arbitrary-node",
    )
    assert e.impersonation[0] == Access("impersonate:arbitrary-node", AUTHN, "nodes", "", "", name)


def test_legacy_impersonation_of_a_node_checks_the_user() -> None:
    # withLegacyImpersonateAttributes(Resource "users", Name "system:node:node1"): legacy
    # keeps users in the core group for node usernames.
    e = impersonated(
        "legacy-impersonater",
        {"username": "system:node:node1", "groups": ["system:authenticated"]},
    )
    assert e.impersonation == (Access("impersonate", "", "users", "", "", "system:node:node1"),)


@pytest.mark.parametrize(
    "username",
    ["system:serviceaccount:Team:sa", "system:serviceaccount:ns:SA", "system:serviceaccount:ns:"],
)
def test_invalid_service_account_username_is_an_ordinary_user(username: str) -> None:
    # serviceaccount.SplitUsername validates the namespace (DNS label) and name (subdomain).
    e = impersonated("legacy-impersonater", {"username": username})
    assert e.impersonation == (Access("impersonate", "", "users", "", "", username),)


# --- refused: the check the 403 names --------------------------------------------------


@pytest.mark.parametrize(
    "message, check",
    [
        # impersonating-user-get-allowed-create-disallowed, third request
        (
            'pods "foo" is forbidden: User "user-impersonater" cannot'
            ' impersonate-on:user-info:create resource "pods" in API group "" in the namespace'
            ' "bar": deny by default',
            Access("impersonate-on:user-info:create", "", "pods", "", "bar", "foo"),
        ),
        # impersonating-node-not-allowed
        (
            'nodes.authentication.k8s.io "node1" is forbidden: User "sa-impersonater" cannot'
            ' impersonate:arbitrary-node resource "nodes" in API group "authentication.k8s.io"'
            " at the cluster scope: deny by default",
            Access("impersonate:arbitrary-node", AUTHN, "nodes", "", "", "node1"),
        ),
        # impersonating-node-not-allowed-action
        (
            'pods "foo" is forbidden: User "node-impersonater" cannot'
            ' impersonate-on:arbitrary-node:create resource "pods" in API group "" in the'
            ' namespace "bar": deny by default',
            Access("impersonate-on:arbitrary-node:create", "", "pods", "", "bar", "foo"),
        ),
        # impersonating-error
        (
            'users.authentication.k8s.io "anyone" is forbidden: User "tester" cannot'
            ' impersonate:user-info resource "users" in API group "authentication.k8s.io" at the'
            " cluster scope: deny by default",
            Access("impersonate:user-info", AUTHN, "users", "", "", "anyone"),
        ),
        # disallowed-userextra-3: the extra key (with its own slash) is the subresource
        (
            'userextras.authentication.k8s.io "scope-a" is forbidden: User "user-impersonater"'
            ' cannot impersonate:user-info resource "userextras/pandas.io/scopes" in API group'
            ' "authentication.k8s.io" at the cluster scope: deny by default',
            Access("impersonate:user-info", AUTHN, "userextras", "pandas.io/scopes", "", "scope-a"),
        ),
        # system:masters-group-not-allowed
        (
            'groups.authentication.k8s.io "system:masters" is forbidden: User "user-impersonater"'
            ' cannot impersonate:user-info resource "groups" in API group "authentication.k8s.io"'
            " at the cluster scope: impersonating the system:masters group is not allowed",
            Access("impersonate:user-info", AUTHN, "groups", "", "", "system:masters"),
        ),
        # legacy impersonation, as before
        (
            'users "admin" is forbidden: User "eve" cannot impersonate resource "users" in API'
            ' group "" at the cluster scope',
            Access("impersonate", "", "users", "", "", "admin"),
        ),
        # The same format (apierrors.NewForbidden around forbiddenMessage) for attributes the
        # tests above do not show: no name, a subresource, a non-resource request, a %q escape.
        (
            'pods is forbidden: User "u" cannot impersonate-on:user-info:list resource "pods" in'
            ' API group "" in the namespace "bar": deny by default',
            Access("impersonate-on:user-info:list", "", "pods", "", "bar", ""),
        ),
        (
            'pods "foo" is forbidden: User "u" cannot impersonate-on:serviceaccount:create'
            ' resource "pods/exec" in API group "" in the namespace "bar"',
            Access("impersonate-on:serviceaccount:create", "", "pods", "exec", "bar", "foo"),
        ),
        (
            'forbidden: User "u" cannot impersonate-on:user-info:get path "/version": deny',
            Access("impersonate-on:user-info:get", path="/version", resource_request=False),
        ),
        (
            'groups.authentication.k8s.io "a \\"b\\"" is forbidden: User "u" cannot'
            ' impersonate:user-info resource "groups" in API group "authentication.k8s.io" at the'
            " cluster scope: deny by default",
            Access("impersonate:user-info", AUTHN, "groups", "", "", 'a "b"'),
        ),
    ],
)
def test_refused_check_is_read_from_the_message(message: str, check: Access) -> None:
    assert denied_impersonation(message) == check


@pytest.mark.parametrize(
    "message",
    [
        'pods "foo" is forbidden: User "u" cannot get resource "pods" in API group "" in the'
        ' namespace "bar"',
        'pods "foo" is forbidden: User "cannot impersonate" cannot get resource "pods" in API'
        ' group "" in the namespace "bar"',
        "impersonating the system:masters group is not allowed",
    ],
)
def test_other_refusals_are_not_impersonation(message: str) -> None:
    assert denied_impersonation(message) is None


def test_refused_constrained_impersonation_records_the_refused_check_only() -> None:
    # The request itself was never authorized: the requestor is not recorded as refused
    # create pods, only as refused the impersonate-on check.
    e = refused(
        "user-impersonater",
        'pods "foo" is forbidden: User "user-impersonater" cannot'
        ' impersonate-on:user-info:create resource "pods" in API group "" in the namespace'
        ' "bar": deny by default',
        {
            "verb": "create",
            "uri": "/api/v1/namespaces/bar/pods",
            "ref": {"resource": "pods", "namespace": "bar", "name": "foo", "apiVersion": "v1"},
        },
    )
    assert e.decision is Decision.FORBID and e.impersonator is None
    assert e.identity.user == "user-impersonater"
    assert e.impersonation == (
        Access("impersonate-on:user-info:create", "", "pods", "", "bar", "foo"),
    )


def test_refused_node_impersonation_records_the_node_check() -> None:
    e = refused(
        "system:serviceaccount:default:default",
        'nodes.authentication.k8s.io "node1" is forbidden: User'
        ' "system:serviceaccount:default:default" cannot impersonate:arbitrary-node resource'
        ' "nodes" in API group "authentication.k8s.io" at the cluster scope: deny by default',
        GET_SECRET,
    )
    assert e.decision is Decision.FORBID and e.impersonator is None
    assert e.impersonation == (
        Access("impersonate:arbitrary-node", AUTHN, "nodes", "", "", "node1"),
    )
