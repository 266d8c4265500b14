"""kubewatch.diff: paths, list matching, ignore and redact trees, input safety."""

from __future__ import annotations

import copy
from typing import Any

import pytest

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the property tests are optional extras
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

from kubewatch.diff import (
    DEFAULT_IGNORE,
    DEFAULT_IGNORE_TREE,
    SECRET_REDACT_TREE,
    PathTree,
    compile_paths,
    diff,
)
from kubewatch.events import REDACTED, Change

R = REDACTED


def ch(path: str, old: Any, new: Any, op: str = "changed") -> Change:
    return Change(path, old, new, op)


def pod(**spec: Any) -> dict[str, Any]:
    """A small Pod; keyword arguments override spec fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "prod", "resourceVersion": "10"},
        "spec": {
            "containers": [
                {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]},
                {"name": "proxy", "image": "proxy:1"},
            ],
            **spec,
        },
        "status": {"phase": "Running"},
    }


WEB = {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]}
PROXY = {"name": "proxy", "image": "proxy:1"}
SIDECAR = {"name": "sidecar", "image": "side:1"}

CASES = [
    pytest.param({"a": 1}, {"a": 2}, None, None, [ch("a", 1, 2)], id="scalar-change"),
    pytest.param({}, {"a": 1}, None, None, [ch("a", None, 1, "added")], id="key-added"),
    pytest.param({"a": 1}, {}, None, None, [ch("a", 1, None, "removed")], id="key-removed"),
    pytest.param(
        {"spec": {"template": {"spec": {"replicas": 1}}}},
        {"spec": {"template": {"spec": {"replicas": 3}}}},
        None,
        None,
        [ch("spec.template.spec.replicas", 1, 3)],
        id="nested",
    ),
    pytest.param(
        {"b": 1, "a": 1, "c": 1, "d": 1},
        {"d": 2, "c": 1, "e": 5, "b": 2},
        None,
        None,
        [ch("d", 1, 2), ch("e", None, 5, "added"), ch("b", 1, 2), ch("a", 1, None, "removed")],
        id="order-new-document-then-removed",
    ),
    pytest.param(
        {"metadata": {"labels": {"app.kubernetes.io/name": "a"}}},
        {"metadata": {"labels": {"app.kubernetes.io/name": "b"}}},
        None,
        None,
        [ch('metadata.labels["app.kubernetes.io/name"]', "a", "b")],
        id="quoted-key-dot",
    ),
    pytest.param(
        {"k": {'we"ird [x]': 1, "sp ace": 1, "": 1, "*": 1}},
        {"k": {'we"ird [x]': 2, "sp ace": 2, "": 2, "*": 2}},
        None,
        None,
        [
            ch('k["we\\"ird [x]"]', 1, 2),
            ch('k["sp ace"]', 1, 2),
            ch('k[""]', 1, 2),
            ch('k["*"]', 1, 2),
        ],
        id="quoted-key-odd",
    ),
    pytest.param(
        {"a.b": 1}, {"a.b": 2}, None, None, [ch('["a.b"]', 1, 2)], id="quoted-key-at-root"
    ),
    pytest.param(
        pod(),
        {**pod(), "spec": {"containers": [{**WEB, "image": "web:2"}, PROXY]}},
        None,
        None,
        [ch("spec.containers[web].image", "web:1", "web:2")],
        id="named-list-image-change",
    ),
    pytest.param(
        pod(),
        {**pod(), "spec": {"containers": [WEB, PROXY, SIDECAR]}},
        None,
        None,
        [ch("spec.containers[sidecar]", None, SIDECAR, "added")],
        id="named-list-item-added",
    ),
    pytest.param(
        pod(),
        {**pod(), "spec": {"containers": [PROXY]}},
        None,
        None,
        [ch("spec.containers[web]", WEB, None, "removed")],
        id="named-list-item-removed",
    ),
    pytest.param(
        pod(), {**pod(), "spec": {"containers": [PROXY, WEB]}}, None, None, [], id="reordered"
    ),
    pytest.param(
        {"c": [{"name": "a.b", "v": 1}, {"name": "7", "v": 1}]},
        {"c": [{"name": "a.b", "v": 2}, {"name": "7", "v": 2}]},
        None,
        None,
        [ch('c["a.b"].v', 1, 2), ch('c["7"].v', 1, 2)],
        id="named-list-odd-names-quoted",
    ),
    pytest.param(
        {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Synced", "s": 1}]},
        {"conditions": [{"type": "Synced", "s": 1}, {"type": "Ready", "status": "True"}]},
        None,
        None,
        [ch("conditions[Ready].status", "False", "True")],
        id="type-keyed-list",
    ),
    pytest.param(
        {"conditions": []},
        {"conditions": [{"type": "Ready"}]},
        None,
        None,
        [ch("conditions[Ready]", None, {"type": "Ready"}, "added")],
        id="keyed-list-from-empty",
    ),
    pytest.param(
        {"c": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]},
        {"c": [{"name": "a", "v": 1}, {"name": "a", "v": 3}]},
        None,
        None,
        [ch("c[1].v", 2, 3)],
        id="duplicate-names-index-wise",
    ),
    pytest.param(
        {"args": ["a", "b", "c"]},
        {"args": ["a", "x", "c"]},
        None,
        None,
        [ch("args[1]", "b", "x")],
        id="index-wise-list",
    ),
    pytest.param(
        {"m": [[1, {"k": 1}]]},
        {"m": [[1, {"k": 2}]]},
        None,
        None,
        [ch("m[0][1].k", 1, 2)],
        id="nested-lists",
    ),
    pytest.param(
        {"args": ["a", "b"]},
        {"args": ["a", "b", "c"]},
        None,
        None,
        [ch("args", ["a", "b"], ["a", "b", "c"])],
        id="list-length-changed",
    ),
    pytest.param({"a": 1}, {"a": "1"}, None, None, [ch("a", 1, "1")], id="type-change"),
    pytest.param(
        {"a": {"b": 1}}, {"a": 5}, None, None, [ch("a", {"b": 1}, 5)], id="dict-to-scalar"
    ),
    pytest.param({"a": [1]}, {"a": {"0": 1}}, None, None, [ch("a", [1], {"0": 1})], id="list-dict"),
    pytest.param({"a": None}, {"a": 1}, None, None, [ch("a", None, 1)], id="null-to-value"),
    pytest.param({"a": 1}, {"a": None}, None, None, [ch("a", 1, None)], id="value-to-null"),
    pytest.param({}, {"a": None}, None, None, [ch("a", None, None, "added")], id="null-added"),
    pytest.param({"a": None}, {}, None, None, [ch("a", None, None, "removed")], id="null-removed"),
    pytest.param({"a": 1}, {"a": 1.0}, None, None, [], id="int-float-equal"),
    # ignore trees
    pytest.param(
        {"spec": {"a": 1, "b": 1}},
        {"spec": {"a": 2, "b": 2}},
        compile_paths(["spec.a"]),
        None,
        [ch("spec.b", 1, 2)],
        id="ignore-exact",
    ),
    pytest.param(
        {"spec": {"a": {"x": 1}, "b": 1}},
        {"spec": {"a": {"x": 2}, "b": 2}},
        compile_paths(["spec.a"]),
        None,
        [ch("spec.b", 1, 2)],
        id="ignore-exact-covers-subtree",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "b": "1"}, "name": "x"}},
        {"metadata": {"labels": {"a": "2", "c": "1"}, "name": "y"}},
        compile_paths(["metadata.labels.*"]),
        None,
        [ch("metadata.name", "x", "y")],
        id="ignore-star-keys",
    ),
    pytest.param(
        pod(),
        {**pod(), "spec": {"containers": [{**WEB, "image": "web:2", "args": ["-v"]}, PROXY]}},
        compile_paths(["spec.containers[*].image"]),
        None,
        [ch("spec.containers[web].args", None, ["-v"], "added")],
        id="ignore-star-list-items",
    ),
    pytest.param(
        {"args": ["a", "b"], "x": 1},
        {"args": ["a", "c"], "x": 2},
        compile_paths(["args[1]"]),
        None,
        [ch("x", 1, 2)],
        id="ignore-index",
    ),
    pytest.param(
        {"a": {"b": {"c": 1}, "d": 1}},
        {"a": {"b": {"c": 2}, "d": 2}},
        compile_paths(["a.**"]),
        None,
        [],
        id="ignore-globstar-below",
    ),
    pytest.param(
        {"a": {"b": 1}},
        {"a": 3},
        compile_paths(["a.**"]),
        None,
        [ch("a", {}, 3)],
        id="ignore-globstar-not-the-parent-itself",
    ),
    pytest.param(
        {"x": {"keep": 1}},
        {"x": {"keep": 1}, "meta": {"noise": 1, "keep": 1}},
        compile_paths(["meta.noise"]),
        None,
        [ch("meta", None, {"keep": 1}, "added")],
        id="ignored-parts-pruned-from-wholesale-value",
    ),
    pytest.param(
        {"metadata": {"name": "a"}},
        {"metadata": {"name": "a", "annotations": {"noise": "x"}}},
        compile_paths(["metadata.annotations.noise"]),
        None,
        [],
        id="wholesale-value-all-ignored",
    ),
    # defaults
    pytest.param(
        pod(),
        {**pod(), "status": {"phase": "Failed"}},
        DEFAULT_IGNORE_TREE,
        None,
        [],
        id="default-status-only",
    ),
    pytest.param(
        pod(),
        {**pod(), "metadata": {**pod()["metadata"], "resourceVersion": "11"}},
        DEFAULT_IGNORE_TREE,
        None,
        [],
        id="default-resourceVersion-only",
    ),
    pytest.param(
        {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "1"}}},
        {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "2"}}},
        DEFAULT_IGNORE_TREE,
        None,
        [],
        id="default-last-applied",
    ),
    pytest.param(
        {"metadata": {"generation": 1, "managedFields": [{"manager": "a"}]}, "spec": {"r": 1}},
        {"metadata": {"generation": 2, "managedFields": [{"manager": "b"}]}, "spec": {"r": 2}},
        DEFAULT_IGNORE_TREE,
        None,
        [ch("spec.r", 1, 2)],
        id="default-keeps-spec",
    ),
    # redaction
    pytest.param(
        {"kind": "Secret", "data": {"password": "b2xk", "user": "dQ=="}},
        {"kind": "Secret", "data": {"password": "bmV3", "user": "dQ=="}},
        None,
        SECRET_REDACT_TREE,
        [ch("data.password", R, R)],
        id="redact-secret-data-change",
    ),
    pytest.param(
        {"data": {"a": "eA=="}},
        {"data": {"b": "eQ=="}},
        None,
        SECRET_REDACT_TREE,
        [ch("data.b", None, R, "added"), ch("data.a", R, None, "removed")],
        id="redact-keys-added-removed",
    ),
    pytest.param(
        {"kind": "Secret"},
        {"kind": "Secret", "data": {"password": "cA==", "token": "dA=="}},
        None,
        SECRET_REDACT_TREE,
        [ch("data", None, {"password": R, "token": R}, "added")],
        id="redact-data-added-wholesale",
    ),
    pytest.param(
        {"data": {"password": "cA=="}},
        {"data": "oops"},
        None,
        SECRET_REDACT_TREE,
        [ch("data", {"password": R}, "oops")],
        id="redact-data-replaced-by-scalar",
    ),
    pytest.param(
        {"stringData": {"password": "old"}},
        {"stringData": {"password": "new"}},
        None,
        SECRET_REDACT_TREE,
        [ch("stringData.password", R, R)],
        id="redact-stringData",
    ),
    pytest.param(
        {"data": {"cfg": {"x": "1"}}},
        {"data": {"cfg": {"x": "2"}}},
        None,
        SECRET_REDACT_TREE,
        [ch("data.cfg.x", R, R)],
        id="redact-below-redacted-path",
    ),
    pytest.param(
        {"data": {"p": "x"}, "metadata": {"resourceVersion": "1"}},
        {"data": {"p": "y"}, "metadata": {"resourceVersion": "2"}},
        DEFAULT_IGNORE_TREE,
        SECRET_REDACT_TREE,
        [ch("data.p", R, R)],
        id="redact-with-default-ignore",
    ),
]


@pytest.mark.parametrize(("old", "new", "ignore", "redact", "expected"), CASES)
def test_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    ignore: PathTree | None,
    redact: PathTree | None,
    expected: list[Change],
) -> None:
    """Each case pins paths, ops, values and order, and that inputs come back untouched."""
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    assert diff(old, new, ignore, redact=redact) == expected
    assert old == old_copy
    assert new == new_copy


def test_identical_object_and_equal_copy_give_nothing() -> None:
    obj = pod()
    assert diff(obj, obj) == []
    assert diff(obj, copy.deepcopy(obj)) == []


def test_values_are_the_callers_objects() -> None:
    """No copies on the plain path: the rendering stage must not mutate them (documented)."""
    item = {"name": "sidecar"}
    [change] = diff({"c": []}, {"c": [item]})
    assert change.new is item


def test_redaction_does_not_touch_inputs() -> None:
    old: dict[str, Any] = {}
    new = {"data": {"password": "cA=="}}
    diff(old, new, redact=SECRET_REDACT_TREE)
    assert new == {"data": {"password": "cA=="}}


def test_default_ignore_tree_matches_default_ignore() -> None:
    assert len(DEFAULT_IGNORE) == 6
    base: dict[str, Any] = {"metadata": {"annotations": {}}, "status": {}}
    for pattern in DEFAULT_IGNORE:
        tree = compile_paths([pattern])
        assert repr(tree)  # usable in logs
        changed = _set_path(copy.deepcopy(base), pattern, "x")
        assert diff(base, changed, DEFAULT_IGNORE_TREE) == [], pattern
        assert diff(base, changed) != [], pattern


def _set_path(obj: dict[str, Any], pattern: str, value: Any) -> dict[str, Any]:
    """Test helper for the default patterns: dotted keys plus one trailing ["..."]."""
    head, _, quoted = pattern.partition('["')
    keys = head.split(".")
    if quoted:
        keys.append(quoted[: -len('"]')])
    node = obj
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return obj


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("", id="empty"),
        pytest.param(".a", id="leading-dot"),
        pytest.param("a..b", id="double-dot"),
        pytest.param("a[", id="unclosed"),
        pytest.param("a[]", id="empty-brackets"),
        pytest.param('a["x', id="unterminated-quote"),
        pytest.param('a["x"', id="quote-without-bracket"),
        pytest.param("a[x]b", id="missing-dot"),
        pytest.param("a.**.b", id="globstar-not-last"),
        pytest.param("a b", id="space"),
    ],
)
def test_compile_paths_rejects(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid path pattern"):
        compile_paths([pattern])


def test_compile_paths_rejects_a_single_string() -> None:
    with pytest.raises(TypeError):
        compile_paths("status")


@pytest.mark.parametrize(
    ("patterns", "path_keys"),
    [
        pytest.param(["a.b"], ["a", "b"], id="dotted"),
        pytest.param(['a["b.c"]'], ["a", "b.c"], id="quoted"),
        pytest.param(["a[web].image"], ["a", "web", "image"], id="item"),
        pytest.param(['["x y"].z'], ["x y", "z"], id="quoted-root"),
        pytest.param(["a.*.c", "a.b.d"], ["a", "b", "c"], id="star-merged-into-literal"),
        pytest.param(["a[*]"], ["a", "anything"], id="bracket-star"),
    ],
)
def test_compile_paths_matches(patterns: list[str], path_keys: list[str]) -> None:
    """Walk the tree as diff does: ``children.get(key, star)`` down to the all-node."""
    node: PathTree | None = compile_paths(patterns)
    for key in path_keys:
        assert node is not None
        node = node.children.get(key, node.star)
    assert node is not None
    assert node.star is node  # the "everything below" node


def test_quoted_star_is_literal() -> None:
    tree = compile_paths(['a["*"]'])
    assert diff({"a": {"*": 1, "b": 1}}, {"a": {"*": 2, "b": 2}}, tree) == [ch("a.b", 1, 2)]


def test_output_paths_compile_back() -> None:
    """Every reported path, used as an ignore pattern, silences exactly that change."""
    old = {
        "metadata": {"labels": {"app.kubernetes.io/name": "a", "tier": "x"}},
        "spec": {"containers": [{"name": "a.b", "image": "1"}], "args": ["x", "y"]},
    }
    new = {
        "metadata": {"labels": {"app.kubernetes.io/name": "b", "tier": "y"}},
        "spec": {"containers": [{"name": "a.b", "image": "2"}], "args": ["x", "z"]},
    }
    changes = diff(old, new)
    assert len(changes) == 4
    for change in changes:
        rest = diff(old, new, compile_paths([change.path]))
        assert change not in rest
        assert len(rest) == 3


if HAVE_HYPOTHESIS:
    _keys = st.text(max_size=6).filter(lambda k: k not in ("name", "type"))
    """Without name/type keys no list is keyed, so equality is plain ``==`` (no reordering)."""

    _json = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
        max_leaves=20,
    )
    _objects = st.dictionaries(_keys, _json, max_size=5)

    @given(_objects, _objects)
    @settings(max_examples=300, deadline=None)
    def test_property_empty_iff_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
        assert diff(a, a) == []
        assert diff(a, copy.deepcopy(a)) == []
        assert (diff(a, b) == []) == (a == b)

    @given(_objects, _objects)
    @settings(max_examples=200, deadline=None)
    def test_property_changes_well_formed(a: dict[str, Any], b: dict[str, Any]) -> None:
        """Distinct paths; ops agree with which side is absent; inputs unchanged."""
        a_copy, b_copy = copy.deepcopy(a), copy.deepcopy(b)
        changes = diff(a, b)
        assert len({c.path for c in changes}) == len(changes)
        for change in changes:
            assert change.op in ("added", "removed", "changed")
            if change.op == "added":
                assert change.old is None
            if change.op == "removed":
                assert change.new is None
            assert change.op != "changed" or change.old != change.new
        assert (a, b) == (a_copy, b_copy)

    @given(_objects, _objects)
    @settings(max_examples=200, deadline=None)
    def test_property_paths_compile_back(a: dict[str, Any], b: dict[str, Any]) -> None:
        """Any reported path is a valid ignore pattern, and ignoring them all hides all."""
        paths = [change.path for change in diff(a, b)]
        assert diff(a, b, compile_paths(paths)) == []

    @given(
        st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=6, unique=True),
        st.randoms(use_true_random=False),
    )
    @settings(max_examples=100, deadline=None)
    def test_property_named_list_order_irrelevant(names: list[str], rnd: Any) -> None:
        items = [{"name": n, "image": f"{n}:1"} for n in names]
        shuffled = list(items)
        rnd.shuffle(shuffled)
        assert diff({"containers": items}, {"containers": shuffled}) == []
        changed = [dict(item) for item in shuffled]
        changed[0]["image"] = "other"
        [change] = diff({"containers": items}, {"containers": changed})
        assert change.path.endswith("].image")
        assert (change.old, change.new) == (f"{shuffled[0]['name']}:1", "other")
