"""Reading --rbac paths: files, directories, YAML and JSON, stdin, and one-line errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rbac_builders import corpus_dir

from rbac_advisor.cli.rbacfiles import load_snapshot, manifest_files, read_documents
from rbac_advisor.errors import InputError, ManifestError

ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: ns}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
"""


def test_directory_walk_is_sorted_recursive_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for rel in ["b/x.yaml", "a.yml", "c.json", ".git/ignored.yaml", "notes.txt", ".hidden.yaml"]:
        (tmp_path / rel).write_text("{}")
    assert manifest_files([tmp_path]) == [
        tmp_path / "a.yml",
        tmp_path / "b/x.yaml",
        tmp_path / "c.json",
    ]


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        manifest_files([tmp_path / "nope.yaml"])
    with pytest.raises(InputError, match="no .yaml, .yml or .json files"):
        manifest_files([tmp_path])


def test_multi_document_yaml_labels_documents(tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(ROLE + "---\n" + ROLE.replace("name: r,", "name: s,") + "---\n")
    docs = list(read_documents(path))
    assert [label for label, _ in docs] == [
        f"{path} (document 1)",
        f"{path} (document 2)",
        f"{path} (document 3)",
    ]
    snap = load_snapshot([path])
    assert [r.name for r in snap.roles] == ["r", "s"]
    assert snap.source == str(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(ROLE + "  - : [\n")
    with pytest.raises(ManifestError) as info:
        load_snapshot([path])
    assert str(info.value).startswith(f"{path}: line ")
    assert "invalid YAML" in str(info.value) and "\n" not in str(info.value)


def test_json_list_and_json_errors(tmp_path: Path) -> None:
    good = tmp_path / "dump.json"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "c"},
    }
    good.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [role]}))
    assert [r.name for r in load_snapshot([good]).roles] == ["c"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": ')
    with pytest.raises(ManifestError, match=r"bad.json: line 1: invalid JSON"):
        load_snapshot([bad])


def test_invalid_object_error_names_document(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(ROLE + "---\n" + ROLE.replace("verbs: [get]", "verbs: []"))
    with pytest.raises(ManifestError) as info:
        load_snapshot([path])
    assert str(info.value) == (
        f"{path} (document 2): Role/ns/r: rules[0].verbs: must contain at least one value"
    )


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(ROLE))
    assert [r.name for r in load_snapshot(["-"]).roles] == ["r"]


def test_whole_corpus_directories_load(tmp_path: Path) -> None:
    snap = load_snapshot([corpus_dir() / "rbac/bootstrap-policy/k8s-master-2018-07-28"])
    assert len(snap.roles) == 60 and len(snap.bindings) == 42
    # admin/edit/view are stored without rules there; aggregation fills them in.
    assert all(r.rules for r in snap.roles if r.name in ("admin", "edit", "view"))
    assert sum("no stored rules" in w for w in snap.warnings) == 3


def test_load_rbac_leaves_aggregation_to_the_caller() -> None:
    from rbac_advisor.aggregation import resolve
    from rbac_advisor.cli.rbacfiles import load_rbac

    path = corpus_dir() / "rbac/bootstrap-policy/k8s-recent"
    raw = load_rbac([path])
    assert [r.rules for r in raw.roles if r.name in ("admin", "edit", "view")] == [(), (), ()]
    assert raw.warnings == () and raw.source == str(path)
    resolved, drift = resolve(raw)
    full = load_snapshot([path])
    assert resolved.roles == full.roles and full.warnings == tuple(drift)
