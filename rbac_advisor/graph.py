"""The RBAC graph: subject -> binding -> role -> rule, as a frozen networkx MultiDiGraph. Pure.

The only module that imports networkx. Subject nodes are *effective* subjects: a
ServiceAccount subject without a namespace in a RoleBinding becomes the service account of
the binding's namespace, and ``apiGroup`` is dropped, so one user is one node whatever the
manifests wrote; the subject as written is kept on the subject -> binding edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from rbac_advisor.authorizer import rule_allows
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKey,
    BindingKind,
    Grant,
    Identity,
    PolicyRule,
    RoleKey,
    Snapshot,
    Subject,
    SubjectKind,
    authenticated_identity,
)


@dataclass(frozen=True, slots=True, order=True)
class RuleNode:
    """A rule node: the ``index``-th rule of ``role``."""

    role: RoleKey
    index: int


@dataclass(frozen=True, slots=True, order=True)
class Reach:
    """A binding that applies to an identity, through which subject.

    ``implied`` is True when the subject is a group the apiserver adds on authentication
    (``system:authenticated``, ``system:serviceaccounts``, ``system:serviceaccounts:NS``)
    rather than one the identity was given.
    """

    binding: BindingKey
    role: RoleKey
    subject: Subject
    implied: bool = False


def effective_subject(subject: Subject, binding: Binding) -> Subject | None:
    """The subject as the authorizer matches it (appliesToUser); None if it never matches."""
    if subject.kind == SubjectKind.SERVICE_ACCOUNT:
        ns = subject.namespace
        if not ns and binding.kind == BindingKind.ROLE_BINDING:
            ns = binding.namespace
        return Subject(subject.kind, subject.name, ns) if ns else None
    if subject.kind in (SubjectKind.USER, SubjectKind.GROUP):
        return Subject(subject.kind, subject.name)
    return None


def build_graph(snapshot: Snapshot) -> nx.MultiDiGraph[object]:
    """Snapshot -> frozen graph. Node attribute ``type``: subject, binding, role or rule.

    Role nodes carry ``missing=True`` when a binding refers to a role the snapshot lacks.
    Binding -> role edges exist even then, so dangling references stay visible.
    """
    g: nx.MultiDiGraph[object] = nx.MultiDiGraph()
    for role in snapshot.roles:
        g.add_node(role.key, type="role", missing=False, obj=role)
        for i, rule in enumerate(role.rules):
            node = RuleNode(role.key, i)
            g.add_node(node, type="rule", rule=rule)
            g.add_edge(role.key, node)
    for b in snapshot.bindings:
        g.add_node(b.key, type="binding", obj=b)
        if b.role_key not in g:
            g.add_node(b.role_key, type="role", missing=True, obj=None)
        g.add_edge(b.key, b.role_key)
        for i, s in enumerate(b.subjects):
            eff = effective_subject(s, b)
            if eff is None:
                continue
            g.add_node(eff, type="subject")
            g.add_edge(eff, b.key, key=i, subject=s)
    frozen: nx.MultiDiGraph[object] = nx.freeze(g)
    return frozen


class RbacGraph:
    """Queries over the graph: who can do something, what can someone do, and through what."""

    def __init__(self, snapshot: Snapshot) -> None:
        """Build the frozen graph for ``snapshot``."""
        self.graph = build_graph(snapshot)

    def _subjects_of(self, binding: BindingKey) -> list[Subject]:
        return sorted({s for s in self.graph.predecessors(binding) if isinstance(s, Subject)})

    def _rules_of(self, role: RoleKey) -> list[tuple[int, PolicyRule]]:
        out = []
        for node in self.graph.successors(role):
            if isinstance(node, RuleNode):
                out.append((node.index, self.graph.nodes[node]["rule"]))
        return sorted(out)

    def who_can(self, access: Access) -> list[Grant]:
        """Every (subject, binding, role, rule) that allows ``access``, sorted.

        RoleBindings count only for resource requests in their own namespace, as in the
        authorizer. ``system:masters`` (allowed before RBAC) is not listed.
        """
        out: list[Grant] = []
        for node, data in self.graph.nodes(data=True):
            if not isinstance(node, RuleNode) or not rule_allows(data["rule"], access):
                continue
            for binding in self.graph.predecessors(node.role):
                assert isinstance(binding, BindingKey)
                if binding.kind == BindingKind.ROLE_BINDING and (
                    not access.resource_request or access.namespace != binding.namespace
                ):
                    continue
                for subject in self._subjects_of(binding):
                    out.append(Grant(binding, node.role, node.index, data["rule"], subject))
        return sorted(out, key=_grant_order)

    def what_can(self, who: Subject | Identity) -> list[Grant]:
        """Every rule granted to a subject (or to an identity with its groups), sorted.

        A Subject gets only the bindings that name it; an Identity also gets those of its
        groups, including the ones authentication adds (see ``bindings_reaching``).
        """
        if isinstance(who, Identity):
            reaches = [(r.binding, r.subject) for r in self.bindings_reaching(who)]
        else:
            node = Subject(who.kind, who.name, who.namespace)
            if node not in self.graph:
                return []
            reaches = [(b, node) for b in self.graph.successors(node) if isinstance(b, BindingKey)]
        out: list[Grant] = []
        for binding, subject in reaches:
            for role in self.graph.successors(binding):
                assert isinstance(role, RoleKey)
                for index, rule in self._rules_of(role):
                    out.append(Grant(binding, role, index, rule, subject))
        return sorted(set(out), key=_grant_order)

    def bindings_reaching(self, identity: Identity) -> list[Reach]:
        """Bindings that apply to ``identity``: directly, or through its groups.

        The groups authentication adds (``system:authenticated`` for everyone but
        ``system:anonymous``, the service-account groups for service accounts) are added
        first, so a bare user name finds what it gets in a real cluster.
        """
        full = authenticated_identity(identity.user, identity.groups)
        given = set(identity.groups)
        candidates: list[tuple[Subject, bool]] = [(Subject(SubjectKind.USER, identity.user), False)]
        sa = full.service_account
        if sa is not None:
            candidates.append((Subject(SubjectKind.SERVICE_ACCOUNT, sa[1], sa[0]), False))
        candidates += [(Subject(SubjectKind.GROUP, g), g not in given) for g in full.groups]
        out: list[Reach] = []
        for subject, implied in candidates:
            if subject not in self.graph:
                continue
            for binding in self.graph.successors(subject):
                assert isinstance(binding, BindingKey)
                for role in self.graph.successors(binding):
                    assert isinstance(role, RoleKey)
                    out.append(Reach(binding, role, subject, implied))
        return sorted(set(out))


def _grant_order(g: Grant) -> tuple[Subject, BindingKey, RoleKey, int]:
    return (g.subject, g.binding, g.role, g.rule_index)
