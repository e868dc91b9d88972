"""roles.yaml quotes every string a YAML reader (PyYAML, YAML 1.2, kubectl) could retype."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus import missing
from hypothesis import given
from hypothesis import strategies as st
from kube_files import MissingBinaries, check_binaries
from rbac_builders import rule

from rbac_advisor.rbac import Role, RoleKind
from rbac_advisor.render.manifests import dump, needs_quotes, render

AMBIGUOUS = [
    "12e4",
    "1e3",
    "12E4",
    "-1e-3",
    "0o17",
    "0x1F",
    "0b101",
    "1_000",
    "+_1",
    "012",
    "+1",
    "-1.5e3",
    ".5",
    "1.2.3",
    "1:30",
    ".inf",
    "-.Inf",
    ".NaN",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "Y",
    "null",
    "NULL",
    "~",
    "2001-12-14",
    "2001-12-14T21:59:43.10-05:00",
    "2001-1-2 3:4:5",
    "true",
    "False",
    "<<",
    "=",
    "",
]
ORDINARY = [
    "pod-1",
    "web",
    "system:serviceaccount:ns:sa",
    "rbac-advisor:u3-odd",
    "2026-06-01T09:00:00Z/2026-06-01T09:00:06Z",
    "v1.2.3",
    "inf",
    "nan",
    "e3",
    "1e",
    "0x1p-2",
    "yesterday",
]


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_ambiguous_strings_are_single_quoted(value: str) -> None:
    text = dump({"name": value})
    assert text == f"name: '{value}'\n"
    assert yaml.safe_load(text) == {"name": value}


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_strings_stay_plain(value: str) -> None:
    text = dump({"name": value})
    assert text == f"name: {value}\n"
    assert yaml.safe_load(text) == {"name": value}


def test_resource_names_and_keys_in_roles_yaml() -> None:
    role = Role(
        RoleKind.ROLE,
        "yes",
        "team-a",
        (rule("get", "", "configmaps", "12e4,web"),),
        labels=(("on", "true"),),
    )
    text = render([role])
    assert "  name: 'yes'\n" in text
    assert "    'on': 'true'\n" in text
    assert "  resourceNames:\n  - '12e4'\n  - web\n" in text
    (doc,) = yaml.safe_load_all(text)
    assert doc["rules"][0]["resourceNames"] == ["12e4", "web"]


@given(st.text(alphabet="0123456789.eExXoObB+-_:~yYnN ", min_size=1, max_size=8))
def test_whatever_pyyaml_would_retype_is_quoted(value: str) -> None:
    resolver = yaml.resolver.Resolver()
    resolved = resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if resolved != "tag:yaml.org,2002:str":
        assert needs_quotes(value)
    assert yaml.safe_load(dump([value])) == [value]


def _kubectl() -> Path:
    """The kubectl scripts/build-k8s.sh built (missing: fail under CI, skip elsewhere)."""
    try:
        return check_binaries() / "kubectl"
    except MissingBinaries as err:
        missing(str(err))


def _kubectl_reads(path: Path) -> list[dict[str, Any]]:
    """The objects of ``path`` as kubectl parses them, without a cluster (``--local``)."""
    out = subprocess.run(
        [str(_kubectl()), "annotate", "--local", "-f", str(path), "-o", "json", "checked=yes"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    decoder, text, docs = json.JSONDecoder(), out.stdout.strip(), []
    while text:  # one JSON object per document, back to back
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].lstrip()
    return docs


def test_kubectl_reads_every_name_as_the_same_string(tmp_path: Path) -> None:
    names = [v for v in AMBIGUOUS + ORDINARY if v]
    role = Role(
        RoleKind.ROLE,
        "names",
        "team-a",
        (rule("get", "", "configmaps", ",".join(names)),),
        labels=(("true", "yes"),),
    )
    path = tmp_path / "roles.yaml"
    path.write_text(render([role, Role(RoleKind.CLUSTER_ROLE, "012", "", role.rules)]))
    first, second = _kubectl_reads(path)
    assert sorted(first["rules"][0]["resourceNames"]) == sorted(names)
    assert first["metadata"]["labels"] == {"true": "yes"}
    assert second["metadata"]["name"] == "012"
