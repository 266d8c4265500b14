"""kubewatch.match.diff: paths, list matching, ignore/redact/only trees, path_matches, shorten."""

from __future__ import annotations

import copy
from typing import Any

import pytest

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.budget import examples
except ImportError:  # the property tests are optional extras
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

from kubewatch.events import REDACTED, Change
from kubewatch.match.diff import diff
from kubewatch.match.paths import (
    DEFAULT_IGNORE,
    DEFAULT_IGNORE_TREE,
    SECRET_REDACT_TREE,
    PathTree,
    compile_paths,
    path_matches,
)
from kubewatch.match.shorten import SHORTEN_MARKER, shorten, shorten_change

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
    @settings(max_examples=examples(300), deadline=None)
    def test_property_empty_iff_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
        assert diff(a, a) == []
        assert diff(a, copy.deepcopy(a)) == []
        assert (diff(a, b) == []) == (a == b)

    @given(_objects, _objects)
    @settings(max_examples=examples(200), deadline=None)
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
    @settings(max_examples=examples(200), deadline=None)
    def test_property_paths_compile_back(a: dict[str, Any], b: dict[str, Any]) -> None:
        """Any reported path is a valid ignore pattern, and ignoring them all hides all."""
        paths = [change.path for change in diff(a, b)]
        assert diff(a, b, compile_paths(paths)) == []

    @given(
        st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=6, unique=True),
        st.randoms(use_true_random=False),
    )
    @settings(max_examples=examples(100), deadline=None)
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


# --- only: watched paths -------------------------------------------------------------------


def deploy(containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    """A small Deployment; keyword arguments override spec fields."""
    return {
        "metadata": {"name": "web", "resourceVersion": "1", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"annotations": {"a": "1"}},
                "spec": {"containers": [WEB, PROXY] if containers is None else containers},
            },
            **spec,
        },
    }


def tmpl(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


C = "spec.template.spec.containers"
BUSY = {"name": "busy", "command": ["sh"]}  # a container without an image
WEB2 = {**WEB, "image": "web:2", "args": ["-v"]}

ONLY_CASES = [
    pytest.param(
        deploy(),
        {**deploy(replicas=3), "metadata": {"name": "web", "labels": {"app": "x"}}},
        ["spec.replicas"],
        None,
        None,
        [ch("spec.replicas", 1, 3)],
        id="exact-path",
    ),
    pytest.param(
        deploy(),
        deploy(paused=True),
        ["spec.replicas"],
        None,
        None,
        [],
        id="exact-path-unchanged",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB2, PROXY], replicas=2),
        ["spec.template"],
        None,
        None,
        [ch(f"{C}[web].image", "web:1", "web:2"), ch(f"{C}[web].args", None, ["-v"], "added")],
        id="exact-path-covers-subtree",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "c": "1"}, "annotations": {"x": "1"}}},
        {"metadata": {"labels": {"a": "2", "b": "1"}, "annotations": {"x": "2"}}},
        ["metadata.labels.*"],
        None,
        None,
        [
            ch("metadata.labels.a", "1", "2"),
            ch("metadata.labels.b", None, "1", "added"),
            ch("metadata.labels.c", "1", None, "removed"),
        ],
        id="star-keys",
    ),
    pytest.param(
        {"metadata": {"name": "x"}},
        {"metadata": {"name": "x", "labels": {"a": "1", "app.kubernetes.io/name": "w"}}},
        ["metadata.labels.*"],
        None,
        None,
        [
            ch("metadata.labels.a", None, "1", "added"),
            ch('metadata.labels["app.kubernetes.io/name"]', None, "w", "added"),
        ],
        id="star-narrows-added-parent",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {}}},
        ["metadata.labels"],
        None,
        None,
        [ch("metadata.labels.a", "1", None, "removed")],
        id="watched-dict-diffed-below",
    ),
    pytest.param(
        deploy(),
        {**deploy(containers=[WEB2]), "spec": {**deploy()["spec"], "replicas": 5}},
        ["spec.template.**"],
        None,
        None,
        [],
        id="globstar-ignores-siblings",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB2, PROXY], replicas=5),
        ["spec.template.**"],
        None,
        None,
        [ch(f"{C}[web].image", "web:1", "web:2"), ch(f"{C}[web].args", None, ["-v"], "added")],
        id="globstar",
    ),
    pytest.param(
        {"spec": {"replicas": 1}},
        {"spec": {"replicas": 1, "template": {"metadata": {"x": 1}, "spec": {"y": 1}}}},
        ["spec.template.**"],
        None,
        None,
        [
            ch("spec.template.metadata", None, {"x": 1}, "added"),
            ch("spec.template.spec", None, {"y": 1}, "added"),
        ],
        id="globstar-narrows-added-parent",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB2, SIDECAR]),
        [f"{C}[*].image"],
        None,
        None,
        [
            ch(f"{C}[web].image", "web:1", "web:2"),
            ch(f"{C}[sidecar].image", None, "side:1", "added"),
            ch(f"{C}[proxy].image", "proxy:1", None, "removed"),
        ],
        id="named-items-narrowed",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB, PROXY, BUSY]),
        [f"{C}[*].image"],
        None,
        None,
        [],
        id="added-item-without-watched-part",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB2, SIDECAR]),
        [f"{C}[sidecar]"],
        None,
        None,
        [ch(f"{C}[sidecar]", None, SIDECAR, "added")],
        id="named-item-watched-whole",
    ),
    pytest.param(
        {"metadata": {"name": "web"}},
        deploy(),
        ["spec.replicas", f"{C}[*].image"],
        None,
        None,
        [
            ch("spec.replicas", None, 1, "added"),
            ch(f"{C}[web].image", None, "web:1", "added"),
            ch(f"{C}[proxy].image", None, "proxy:1", "added"),
        ],
        id="whole-spec-added-narrowed",
    ),
    pytest.param(
        deploy(),
        {"metadata": {"name": "web"}},
        ["spec.replicas", f"{C}[*].image"],
        None,
        None,
        [
            ch("spec.replicas", 1, None, "removed"),
            ch(f"{C}[web].image", "web:1", None, "removed"),
            ch(f"{C}[proxy].image", "proxy:1", None, "removed"),
        ],
        id="whole-spec-removed-narrowed",
    ),
    pytest.param(
        {"spec": {"template": {"spec": {"x": 1}}, "replicas": 1}},
        {"spec": {"template": "oops", "replicas": 1}},
        ["spec.template.spec.x", "spec.template.spec.y"],
        None,
        None,
        [ch("spec.template.spec.x", 1, None, "removed")],
        id="shape-change-narrowed",
    ),
    pytest.param(
        {"spec": {"v": {"a": 1, "b": 2}}},
        {"spec": {"v": [{"name": "a"}]}},
        ["spec.v.*"],
        None,
        None,
        [
            ch("spec.v[a]", None, {"name": "a"}, "added"),
            ch("spec.v.a", 1, None, "removed"),
            ch("spec.v.b", 2, None, "removed"),
        ],
        id="dict-became-list-walked-side-by-side",
    ),
    pytest.param(
        {"spec": {"args": ["a", "b"]}},
        {"spec": {"args": ["a", "c", "d"]}},
        ["spec.args[1]"],
        None,
        None,
        [ch("spec.args[1]", "b", "c")],
        id="index-list-resized-narrowed",
    ),
    pytest.param(
        {"spec": {"args": ["a", "b"]}},
        {"spec": {"args": ["a", "b", "d"]}},
        ["spec.args[*]"],
        None,
        None,
        [ch("spec.args[2]", None, "d", "added")],
        id="index-list-grown-star",
    ),
    pytest.param(
        {"spec": {"args": ["a", "b"]}},
        {"spec": {"args": ["a", "b", "d"]}},
        ["spec.args"],
        None,
        None,
        [ch("spec.args", ["a", "b"], ["a", "b", "d"])],
        id="watched-list-resized-whole",
    ),
    pytest.param(
        {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X"}]}},
        {"status": {"conditions": [{"type": "X", "r": 1}, {"type": "Ready", "status": "True"}]}},
        ["status.conditions[Ready].status"],
        None,
        None,
        [ch("status.conditions[Ready].status", "False", "True")],
        id="type-keyed-list",
    ),
    pytest.param(
        {"a": 1, "b": {"x": 1}},
        {"b": {"x": 2}, "c": 3},
        ["a", "b.x", "c"],
        None,
        None,
        [ch("b.x", 1, 2), ch("c", None, 3, "added"), ch("a", 1, None, "removed")],
        id="order-new-document-then-removed",
    ),
    pytest.param(
        {"a": {"*": 1, "b": 1}},
        {"a": {"*": 2, "b": 2}},
        ['a["*"]'],
        None,
        None,
        [ch('a["*"]', 1, 2)],
        id="quoted-star-literal",
    ),
    pytest.param(deploy(), deploy(replicas=4), [], None, None, [], id="nothing-watched"),
    pytest.param(
        deploy(),
        deploy(containers=[WEB2], replicas=4),
        ["**"],
        None,
        None,
        diff(deploy(), deploy(containers=[WEB2], replicas=4)),
        id="everything-watched-is-plain-diff",
    ),
    # ignore inside watched paths
    pytest.param(
        deploy(),
        {
            **deploy(containers=[WEB2]),
            "metadata": {"name": "web", "resourceVersion": "2", "labels": {"app": "web"}},
        },
        ["metadata.**", f"{C}[*].image"],
        DEFAULT_IGNORE,
        None,
        [
            ch(f"{C}[web].image", "web:1", "web:2"),
            ch(f"{C}[proxy].image", "proxy:1", None, "removed"),
        ],
        id="ignore-default-inside-watched",
    ),
    pytest.param(
        deploy(),
        {
            **deploy(),
            "spec": {
                "replicas": 1,
                "template": {"metadata": {"annotations": {"a": "2"}}, "spec": {"c": 1}},
            },
        },
        ["spec.template.**"],
        ["spec.template.metadata.annotations"],
        None,
        [
            ch("spec.template.spec.c", None, 1, "added"),
            ch("spec.template.spec.containers", [WEB, PROXY], None, "removed"),
        ],
        id="ignore-inside-globstar",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB, PROXY, {**SIDECAR, "args": ["-q"]}]),
        [f"{C}[*].image", f"{C}[*].args"],
        [f"{C}[*].image"],
        None,
        [ch(f"{C}[sidecar].args", None, ["-q"], "added")],
        id="ignore-inside-narrowed-item",
    ),
    pytest.param(
        deploy(),
        deploy(containers=[WEB, PROXY, {**SIDECAR, "args": ["-q"]}]),
        [f"{C}[*]"],
        [f"{C}[*].image"],
        None,
        [ch(f"{C}[sidecar]", None, {"name": "sidecar", "args": ["-q"]}, "added")],
        id="ignore-pruned-from-watched-item",
    ),
    pytest.param(
        {"spec": {"x": 1}},
        {"spec": {"x": 2}},
        ["spec.x"],
        ["spec"],
        None,
        [],
        id="ignore-wins-over-watch",
    ),
    # redaction inside watched paths
    pytest.param(
        {"kind": "Secret", "data": {"password": "b2xk", "user": "dQ=="}},
        {"kind": "Secret", "data": {"password": "bmV3", "user": "dg=="}},
        ["data.password"],
        None,
        SECRET_REDACT_TREE,
        [ch("data.password", R, R)],
        id="redact-watched-key",
    ),
    pytest.param(
        {"kind": "Secret"},
        {"kind": "Secret", "data": {"password": "cA==", "user": "dQ=="}},
        ["data.password"],
        None,
        SECRET_REDACT_TREE,
        [ch("data.password", None, R, "added")],
        id="redact-narrowed-from-added-data",
    ),
    pytest.param(
        {"kind": "Secret"},
        {"kind": "Secret", "data": {"password": "cA==", "user": "dQ=="}},
        ["data"],
        None,
        SECRET_REDACT_TREE,
        [ch("data", None, {"password": R, "user": R}, "added")],
        id="redact-watched-data-added-whole",
    ),
    pytest.param(
        {"kind": "Secret", "data": {"password": "cA=="}},
        {"kind": "Secret", "data": "oops"},
        ["data.*"],
        None,
        SECRET_REDACT_TREE,
        [ch("data.password", R, None, "removed")],
        id="redact-narrowed-shape-change",
    ),
]


@pytest.mark.parametrize(("old", "new", "only", "ignore", "redact", "expected"), ONLY_CASES)
def test_diff_only(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    only: list[str],
    ignore: list[str] | tuple[str, ...] | None,
    redact: PathTree | None,
    expected: list[Change],
) -> None:
    """Each case pins the narrowed paths, values and order; every path matches ``only``."""
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    tree = compile_paths(only)
    itree = None if ignore is None else compile_paths(ignore)
    changes = diff(old, new, itree, redact=redact, only=tree)
    assert changes == expected
    assert all(path_matches(change.path, tree) for change in changes)
    assert (old, new) == (old_copy, new_copy)


def test_only_none_is_plain_diff() -> None:
    old, new = deploy(), deploy(containers=[WEB2, SIDECAR], replicas=2)
    assert diff(old, new, only=None) == diff(old, new)
    assert diff(old, new, DEFAULT_IGNORE_TREE, only=None) == diff(old, new, DEFAULT_IGNORE_TREE)


class _Untouchable:
    """A value diff must not look at: comparing it fails the test."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("an unwatched value was compared")

    __hash__ = None  # type: ignore[assignment]


def test_only_never_compares_unwatched_values() -> None:
    old = {"spec": {"replicas": 1, "big": _Untouchable()}, "status": _Untouchable()}
    new = {"spec": {"replicas": 2, "big": _Untouchable()}, "status": _Untouchable()}
    only = compile_paths(["spec.replicas", "metadata.labels.*"])
    assert diff(old, new, only=only) == [ch("spec.replicas", 1, 2)]


def test_only_values_are_the_callers_objects() -> None:
    image = "registry.example.com/" + "x" * 20
    new = deploy(containers=[WEB, PROXY, {"name": "sidecar", "image": image}])
    [change] = diff(deploy(), new, only=compile_paths([f"{C}[*].image"]))
    assert change.new is image


# --- path_matches --------------------------------------------------------------------------

PATH_MATCH_CASES = [
    pytest.param("spec.replicas", ["spec.replicas"], True, id="exact"),
    pytest.param("spec.template.spec.x", ["spec.template"], True, id="below"),
    pytest.param("spec", ["spec.replicas"], False, id="above"),
    pytest.param("spec.replicas", ["spec.rep"], False, id="key-prefix-not-a-match"),
    pytest.param("spec.rep", ["spec.replicas"], False, id="pattern-prefix-not-a-match"),
    pytest.param("specs.replicas", ["spec"], False, id="first-key-prefix"),
    pytest.param("spec.replicas", ["metadata", "spec.replicas"], True, id="any-pattern"),
    pytest.param(
        'metadata.labels["app.kubernetes.io/name"]',
        ['metadata.labels["app.kubernetes.io/name"]'],
        True,
        id="quoted-key",
    ),
    pytest.param(
        'metadata.labels["app.kubernetes.io/name"]',
        ["metadata.labels.app"],
        False,
        id="quoted-key-vs-prefix",
    ),
    pytest.param(
        'metadata.labels["app.kubernetes.io/name"]',
        ["metadata.labels.*"],
        True,
        id="quoted-key-star",
    ),
    pytest.param(
        'metadata.labels["tier"]', ["metadata.labels.tier"], True, id="quoted-equals-dotted"
    ),
    pytest.param("spec.containers[web].image", ["spec.containers[*].image"], True, id="named-star"),
    pytest.param("spec.containers[web].image", ["spec.containers.web"], True, id="named-dotted"),
    pytest.param(
        "spec.containers[web].image", ["spec.containers[proxy].image"], False, id="named-other"
    ),
    pytest.param("spec.containers[web]", ["spec.containers[*].image"], False, id="item-above"),
    pytest.param(
        "spec.containers[web].imagePullPolicy",
        ["spec.containers[*].image"],
        False,
        id="key-prefix-in-item",
    ),
    pytest.param('c["7"].v', ["c[7]"], True, id="quoted-digit-name"),
    pytest.param("spec.args[0]", ["spec.args[*]"], True, id="index-star"),
    pytest.param("spec.args[0]", ["spec.args[0]"], True, id="index"),
    pytest.param("spec.args[0]", ["spec.args[1]"], False, id="index-other"),
    pytest.param("spec.args[10]", ["spec.args[1]"], False, id="index-prefix"),
    pytest.param("m[0][1].k", ["m[*][1]"], True, id="nested-indexes"),
    pytest.param("spec.template", ["spec.template.**"], False, id="globstar-not-parent"),
    pytest.param("spec.template.spec.x", ["spec.template.**"], True, id="globstar-below"),
    pytest.param('a["*"]', ['a["*"]'], True, id="literal-star"),
    pytest.param("a.b", ['a["*"]'], False, id="literal-star-not-wild"),
    pytest.param('a["*"]', ["a.*"], True, id="wild-matches-literal-star"),
    pytest.param('["a.b"].c', ['["a.b"]'], True, id="quoted-root"),
    pytest.param("spec.replicas", [], False, id="empty-tree"),
    pytest.param("status.phase", DEFAULT_IGNORE, True, id="default-ignore"),
]


@pytest.mark.parametrize(("path", "patterns", "expected"), PATH_MATCH_CASES)
def test_path_matches(path: str, patterns: list[str], expected: bool) -> None:
    assert path_matches(path, compile_paths(patterns)) is expected


@pytest.mark.parametrize("path", ["", "a.*", "a.**", "a[*]", "a..b", ".a", "a[", 'a["x'])
def test_path_matches_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        path_matches(path, compile_paths(["a"]))


def test_path_matches_every_diff_path() -> None:
    """A reported path matches itself and each of its parents as patterns, not siblings."""
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
        assert path_matches(change.path, compile_paths([change.path]))
        assert path_matches(change.path, compile_paths(["metadata", "spec"]))
        others = [c.path for c in changes if c is not change]
        assert not path_matches(change.path, compile_paths(others))


# --- shorten -------------------------------------------------------------------------------

BIG = {"key": "v" * 300}
BIG_JSON = '{"key":"' + "v" * 300 + '"}'

SHORTEN_CASES = [
    pytest.param("abc", 200, "abc", id="short-string"),
    pytest.param("x" * 200, 200, "x" * 200, id="string-at-limit"),
    pytest.param("x" * 201, 200, "x" * 200 + "… (+1 chars)", id="string-over-limit"),
    pytest.param("é" * 12, 10, "é" * 10 + "… (+2 chars)", id="counts-characters"),
    pytest.param("abc", 0, "… (+3 chars)", id="limit-zero"),
    pytest.param("", 0, "", id="empty-string"),
    pytest.param(12345678901, 3, 12345678901, id="int-unchanged"),
    pytest.param(1.5, 1, 1.5, id="float-unchanged"),
    pytest.param(None, 0, None, id="none-unchanged"),
    pytest.param(True, 0, True, id="bool-unchanged"),
    pytest.param(R, 5, "<reda… (+5 chars)", id="redacted-is-a-string"),
    pytest.param({"a": 1}, 200, {"a": 1}, id="small-dict-unchanged"),
    pytest.param(["a", "b"], 9, ["a", "b"], id="list-at-limit-unchanged"),
    pytest.param(["a", "b"], 8, '["a","b"… (+1 chars)', id="list-over-limit"),
    pytest.param(BIG, 200, BIG_JSON[:200] + "… (+110 chars)", id="big-dict-compact-json"),
    pytest.param({"é": ["ü"]}, 5, '{"é":… (+6 chars)', id="json-keeps-non-ascii"),
]


@pytest.mark.parametrize(("value", "limit", "expected"), SHORTEN_CASES)
def test_shorten(value: Any, limit: int, expected: Any) -> None:
    before = copy.deepcopy(value)
    assert shorten(value, limit) == expected
    assert value == before


def test_shorten_returns_unshortened_values_themselves() -> None:
    for value in ("abc", {"a": [1]}, [1, 2], 3):
        assert shorten(value) is value


def test_shorten_default_limit_and_marker() -> None:
    text = shorten("y" * 250)
    assert text == "y" * 200 + f"{SHORTEN_MARKER} (+50 chars)"
    assert SHORTEN_MARKER == "…"


def test_shorten_rejects_negative_limit() -> None:
    with pytest.raises(ValueError):
        shorten("abc", -1)


def test_shorten_change() -> None:
    change = ch("data", "a" * 30, {"k": "b" * 30}, "changed")
    short = shorten_change(change, 10)
    assert short == ch("data", "a" * 10 + "… (+20 chars)", '{"k":"bbbb… (+28 chars)', "changed")
    assert change.old == "a" * 30  # the original is untouched
    added = shorten_change(ch("x", None, "c" * 5, "added"), 3)
    assert added == ch("x", None, "ccc… (+2 chars)", "added")
    assert shorten_change(added) == added


if HAVE_HYPOTHESIS:
    _small_keys = st.sampled_from(["a", "b", "0", "x.y"])
    _small_json = st.recursive(
        st.none() | st.integers(0, 2) | st.sampled_from(["s", "t"]),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_small_keys, inner, max_size=3),
        max_leaves=12,
    )
    _small_objects = st.dictionaries(_small_keys, _small_json, max_size=4)
    _segments = st.sampled_from(["a", "b", "0", "[1]", '["x.y"]', "*", "[*]"])

    def _join(segments: list[str], globstar: bool) -> str:
        text = ""
        for segment in segments:
            text += segment if segment.startswith("[") or not text else f".{segment}"
        return text + (".**" if globstar else "")

    _patterns = st.builds(_join, st.lists(_segments, min_size=1, max_size=3), st.booleans())

    @given(_small_objects, _small_objects, st.lists(_patterns, max_size=3))
    @settings(max_examples=examples(300), deadline=None)
    def test_property_only_is_the_watched_part_of_diff(
        a: dict[str, Any], b: dict[str, Any], patterns: list[str]
    ) -> None:
        """Every change of ``diff`` that ``only`` matches is kept as it is; every other
        reported change matches ``only`` and narrows (lies below) a change of ``diff``."""
        only = compile_paths(patterns)
        full = diff(a, b)
        watched = diff(a, b, only=only)
        assert len({c.path for c in watched}) == len(watched)
        assert [c for c in full if path_matches(c.path, only)] == [c for c in watched if c in full]
        full_tree = compile_paths([c.path for c in full])
        for change in watched:
            assert path_matches(change.path, only)
            assert path_matches(change.path, full_tree)
            assert change.op != "changed" or change.old != change.new

    @given(_objects, _objects)
    @settings(max_examples=examples(200), deadline=None)
    def test_property_only_everything_or_reported_paths_is_plain_diff(
        a: dict[str, Any], b: dict[str, Any]
    ) -> None:
        full = diff(a, b)
        assert diff(a, b, only=compile_paths(["**"])) == full
        assert diff(a, b, only=compile_paths([c.path for c in full])) == full
