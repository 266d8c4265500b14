"""Structured diff of two Kubernetes objects given as plain JSON dicts.

Runs on every watch update, so it is written for the common case: two large objects that
differ in a few leaves. Equal subtrees are skipped by ``is`` and then by ``==`` (a C-level
deep compare), and only the unequal branches are walked in Python; paths are built only
along those branches.

Paths
    Dotted keys from the root (``spec.replicas``). A key containing ``.``, ``[``, ``]``,
    ``"``, whitespace or control characters, an empty key and the keys ``*`` / ``**`` are
    written JSON-quoted in brackets: ``metadata.labels["app.kubernetes.io/name"]``.
    Items of a keyed list are ``[<name>]`` (``spec.containers[web].image``), quoted the same
    way and also when the name is all digits; items of other lists are ``[0]``, ``[1]``.

Lists
    A list whose items are all dicts with a string ``name``, unique within the list, on both
    sides, is matched by name (containers, env, ports with names, volumes, volumeMounts);
    failing that, by ``type`` when no item has a ``name`` and every ``type`` is a unique
    string (conditions). Reordering a keyed list is not a change. An added or removed item is
    one change for the whole item. Any other unequal list is compared index-wise when both
    sides have the same length, else reported as one change of the whole list.

Equality
    Python's ``==``, as for the JSON values ``orjson`` returns: so ``1 == 1.0`` and, as a
    known limit, ``1 == true`` are not changes. A value of another type (``"1"`` for ``1``,
    a scalar for a dict) is a ``changed``.

Values
    :class:`~kubewatch.events.Change` values are the caller's own objects, not copies, except
    where ignored parts were pruned or secret parts redacted (see :func:`diff`). Nobody may
    mutate them: they are shared with the informer's store.

Watched paths
    ``diff(..., only=tree)`` reports only what changed at or below the watched paths (a
    resource's ``updates.watch`` list), narrowing changes that sit above them; see
    :func:`diff`. :func:`path_matches` answers the same question for one reported path.

Rendering
    :func:`shorten` / :func:`shorten_change` cut long values for messages; never applied by
    :func:`diff` itself, whose values stay whole.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from kubewatch.events import REDACTED, Change

__all__ = [
    "DEFAULT_IGNORE",
    "DEFAULT_IGNORE_TREE",
    "SECRET_REDACT_TREE",
    "SHORTEN_MARKER",
    "PathTree",
    "compile_paths",
    "diff",
    "path_matches",
    "shorten",
    "shorten_change",
]

_MISSING: Final = object()
"""Absent key (distinct from a JSON ``null``)."""

_UNSAFE_KEY: Final = re.compile(r'\A\*{0,2}\Z|[.\[\]"\s\x00-\x1f]')
"""Keys that need the quoted ``["..."]`` form to parse back unambiguously."""

_BARE_SEGMENT: Final = re.compile(r'[^.\[\]"\s]+')

_JSON_DECODER: Final = json.JSONDecoder()


class PathTree:
    """Compiled path patterns: a tree walked alongside the objects, one dict lookup per key.

    ``children`` maps a key (dict key, list item name or index as text) to the subtree for
    it, with the ``*`` subtree already merged in; ``star`` is what any other key gets.
    The singleton ``_ALL`` node means "this path and everything below matches".
    Immutable once built: share freely across threads.
    """

    __slots__ = ("children", "star")

    def __init__(self, children: dict[str, PathTree], star: PathTree | None) -> None:
        self.children = children
        self.star = star

    def __repr__(self) -> str:
        if self is _ALL:
            return "PathTree(<all>)"
        star = "" if self.star is None else f", star={self.star!r}"
        return f"PathTree({self.children!r}{star})"


_ALL: Final = PathTree({}, None)
_ALL.star = _ALL  # every key below an all-matching node also matches: no special case


class _Wild(enum.Enum):
    ONE = "*"
    REST = "**"


_Segment = str | _Wild


class _RawNode:
    """Pattern trie before ``*`` subtrees are merged into literal siblings."""

    __slots__ = ("end", "literal", "star")

    def __init__(self) -> None:
        self.literal: dict[str, _RawNode] = {}
        self.star: _RawNode | None = None
        self.end = False


def _parse_pattern(pattern: str) -> list[_Segment]:
    """Split ``a.b["c.d"][web][*].**`` into segments; raise ValueError with the reason."""

    def fail(why: str) -> ValueError:
        return ValueError(f"invalid path pattern {pattern!r}: {why}")

    segments: list[_Segment] = []
    text = pattern.strip()
    if not text:
        raise fail("empty")
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "[":
            if text.startswith('"', i + 1):
                try:
                    key, end = _JSON_DECODER.raw_decode(text, i + 1)
                except ValueError as exc:
                    raise fail(f"bad quoted key at {i}: {exc}") from None
                if not text.startswith("]", end):
                    raise fail(f"expected ']' at {end}")
                segments.append(key)
                i = end + 1
            else:
                end = text.find("]", i + 1)
                if end <= i + 1:
                    raise fail(f"unclosed or empty '[' at {i}")
                segments.append(_bare(text[i + 1 : end]))
                i = end + 1
            continue
        if char == ".":
            if not segments:
                raise fail("starts with '.'")
            i += 1
        elif segments:
            raise fail(f"expected '.' or '[' at {i}")
        match = _BARE_SEGMENT.match(text, i)
        if match is None:
            raise fail(f'expected a key at {i} (quote odd keys as ["..."])')
        segments.append(_bare(match.group()))
        i = match.end()
    if _Wild.REST in segments[:-1]:
        raise fail("'**' is allowed only as the last segment")
    return segments


def _bare(text: str) -> _Segment:
    if text == "*":
        return _Wild.ONE
    if text == "**":
        return _Wild.REST
    return text


def _freeze(raws: list[_RawNode]) -> PathTree:
    """Merge the raw nodes that apply at one position, pushing ``*`` into literal keys."""
    if any(raw.end for raw in raws):
        return _ALL
    stars = [raw.star for raw in raws if raw.star is not None]
    keys = dict.fromkeys(key for raw in raws for key in raw.literal)
    children = {
        key: _freeze([raw.literal[key] for raw in raws if key in raw.literal] + stars)
        for key in keys
    }
    return PathTree(children, _freeze(stars) if stars else None)


def compile_paths(patterns: Iterable[str]) -> PathTree:
    """Compile path patterns once (config load), for cheap matching on every event.

    Patterns use the output path syntax. A pattern matches its path and everything below
    it. ``*`` matches any one key, list item name or index at its level (``data.*``,
    ``spec.containers[*].image``); ``**``, allowed only as the last segment, matches
    everything below its parent but not the parent itself, which with the subtree rule
    makes ``a.**`` the same as ``a.*``. ``x[k]``, ``x.k`` and ``x["k"]`` are the same
    pattern; only a quoted ``["*"]`` is a literal star.
    """
    if isinstance(patterns, str):
        raise TypeError("compile_paths() takes an iterable of patterns, not one string")
    root = _RawNode()
    for pattern in patterns:
        node = root
        for segment in _parse_pattern(pattern):
            if isinstance(segment, str):
                node = node.literal.setdefault(segment, _RawNode())
            else:
                if node.star is None:
                    node.star = _RawNode()
                node = node.star
        node.end = True
    return _freeze([root])


DEFAULT_IGNORE: Final[tuple[str, ...]] = (
    # Changes on every write; the event carries it separately.
    "metadata.resourceVersion",
    # Server-side-apply bookkeeping, rewritten with fresh timestamps on most updates.
    "metadata.managedFields",
    # Bumped by every spec change, which is itself reported.
    "metadata.generation",
    # Observed state written by controllers (heartbeats, probe times): too chatty to notify.
    "status",
    # A full copy of the last applied manifest: duplicates the real changes, and is huge.
    'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
    # Bumped by the deployment controller on each rollout; the template change is the news.
    'metadata.annotations["deployment.kubernetes.io/revision"]',
)
"""Paths that change without telling a human anything new."""

DEFAULT_IGNORE_TREE: Final = compile_paths(DEFAULT_IGNORE)

SECRET_REDACT_TREE: Final = compile_paths(["data.*", "stringData.*"])
"""Secret values: changes show the key path only, never the value."""


def diff(
    old: dict[str, Any],
    new: dict[str, Any],
    ignore: PathTree | None = None,
    *,
    redact: PathTree | None = None,
    only: PathTree | None = None,
) -> list[Change]:
    """Return the changes from ``old`` to ``new``, in document order of ``new``, then removals.

    Inputs are never mutated. Paths matched by ``ignore`` are skipped; when a change is
    reported above ignored paths (a whole dict added, a list resized), the ignored parts are
    pruned from its values (a copy), and the change is dropped if nothing else is left.
    A change at or below a path matched by ``redact`` gets ``old``/``new`` replaced by
    :data:`~kubewatch.events.REDACTED` (``None`` stays for the absent side); a change above
    one (a whole Secret ``data`` dict added) gets a copy of its values where every
    matching value is replaced, so keys stay visible and values never leak.

    ``only`` (compiled watched paths; ``None``: everything is watched) limits the result to
    changes at or below a path it matches, with the matching rules of :func:`compile_paths`:

    - Keys, list items and indexes that no ``only`` pattern can reach are not walked or
      reported, and are compared only inside a value whose every child is watched at least
      in part (a ``*`` level such as ``containers[*].image``, whose items are compared
      whole with ``==`` at C speed to skip unchanged ones). Where the patterns name keys,
      only those are looked at: watching ``spec.replicas`` never touches the rest of
      ``spec``, so an update outside the watched paths costs a few lookups.
    - Where the two sides differ *above* every watched path, the change is narrowed: both
      values are walked along the patterns and each watched path that exists on at least
      one side is reported on its own: ``added`` if only ``new`` has it, ``removed`` if only
      ``old`` has it, else diffed as usual below it. A path absent from both sides is
      nothing. Example: watching ``spec.template.spec.containers[*].image``, adding
      container ``sidecar`` reports ``spec.template.spec.containers[sidecar].image`` added
      with the image (not the whole item); adding a whole ``spec`` reports each watched
      path inside it.
    - On the way down, lists are matched as without ``only`` (by ``name``, by ``type``,
      else by index). An index-wise list whose length changed is compared item by item
      (the watched paths name indexes); a list that is itself watched is still one change
      of the whole list. A value that changed shape (a dict became a list or a scalar) has
      what it held at watched paths removed and what it now holds there added.
    - At and below a watched path, everything works as without ``only``. ``ignore`` also
      applies on the way down (an ignored path is skipped even if watched) and ``redact``
      masks values as described above, narrowed changes included.

    So every path returned satisfies :func:`path_matches(path, only) <path_matches>`, and a
    change of the plain diff whose path does is returned unchanged.
    """
    if old is new:
        return []
    out: list[Change] = []
    if only is None or only is _ALL:
        if old == new:
            return []
        _diff_dict(old, new, "", inode=ignore, rnode=redact, out=out)
    else:
        _only_value(old, new, "", onode=only, inode=ignore, rnode=redact, out=out)
    return out


def _key_path(path: str, key: str) -> str:
    if _UNSAFE_KEY.search(key) is None:
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _item_path(path: str, name: str) -> str:
    if _UNSAFE_KEY.search(name) is None and not name.isdigit():
        return f"{path}[{name}]"
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def _diff_dict(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    *,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
    path_of: Callable[[str, str], str] = _key_path,
) -> None:
    """Diff two mappings: dicts by key, or named list items by name (``path_of``)."""
    ichildren = istar = None
    if inode is not None:
        ichildren, istar = inode.children, inode.star
    rchildren = rstar = None
    if rnode is not None:
        rchildren, rstar = rnode.children, rnode.star
    isub = rsub = None
    old_get = old.get
    for key, nv in new.items():
        ov = old_get(key, _MISSING)
        if ov is nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is _ALL:
                continue
        if ov is _MISSING:
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            _emit(out, path_of(path, key), None, nv, "added", inode=isub, rnode=rsub)
        elif ov != nv:
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            _diff_value(ov, nv, path_of(path, key), inode=isub, rnode=rsub, out=out)
    if old.keys() <= new.keys():
        return
    for key, ov in old.items():
        if key in new:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is _ALL:
                continue
        if rchildren is not None:
            rsub = rchildren.get(key, rstar)
        _emit(out, path_of(path, key), ov, None, "removed", inode=isub, rnode=rsub)


def _diff_value(
    ov: Any,
    nv: Any,
    path: str,
    *,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
) -> None:
    """Diff two present, unequal values."""
    if isinstance(nv, dict) and isinstance(ov, dict):
        _diff_dict(ov, nv, path, inode=inode, rnode=rnode, out=out)
    elif isinstance(nv, list) and isinstance(ov, list):
        _diff_list(ov, nv, path, inode=inode, rnode=rnode, out=out)
    else:
        _emit(out, path, ov, nv, "changed", inode=inode, rnode=rnode)


def _index_by(items: list[Any], field: str) -> dict[str, dict[str, Any]] | None:
    """``{item[field]: item}`` if every item is a dict with a unique string ``field``."""
    index: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        key = item.get(field)
        if not isinstance(key, str):
            return None
        index[key] = item
    return index if len(index) == len(items) else None


def _index_for(items: list[Any], field: str) -> dict[str, dict[str, Any]] | None:
    index = _index_by(items, field)
    if index is None or (field == "type" and any("name" in item for item in items)):
        return None
    return index


def _keyed_pair(
    old: list[Any], new: list[Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None:
    """Index both lists by ``name``, else by ``type``; an empty side takes the other's key."""
    for field in ("name", "type"):
        new_index = _index_for(new, field)
        if new_index is None:
            continue
        old_index = _index_for(old, field)
        if old_index is not None and (old_index or new_index):
            return old_index, new_index
    return None


def _diff_list(
    old: list[Any],
    new: list[Any],
    path: str,
    *,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
) -> None:
    keyed = _keyed_pair(old, new)
    if keyed is not None:
        _diff_dict(*keyed, path, inode=inode, rnode=rnode, out=out, path_of=_item_path)
        return
    ichildren = istar = None
    if inode is not None:
        ichildren, istar = inode.children, inode.star
    rchildren = rstar = None
    if rnode is not None:
        rchildren, rstar = rnode.children, rnode.star
    isub = rsub = None

    if len(old) != len(new):
        _emit(out, path, old, new, "changed", inode=inode, rnode=rnode)
        return
    for i, nv in enumerate(new):
        ov = old[i]
        if ov is nv or ov == nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(str(i), istar)
            if isub is _ALL:
                continue
        if rchildren is not None:
            rsub = rchildren.get(str(i), rstar)
        _diff_value(ov, nv, f"{path}[{i}]", inode=isub, rnode=rsub, out=out)


def _emit(
    out: list[Change],
    path: str,
    old: Any,
    new: Any,
    op: str,
    *,
    inode: PathTree | None,
    rnode: PathTree | None,
) -> None:
    """Append one change, pruning ignored and redacting secret parts of its values."""
    if inode is not None:  # ignored paths below this one: keep them out of the values
        if op == "changed":
            old, new = _scrub(old, inode, redact=False), _scrub(new, inode, redact=False)
            if old == new:
                return
        else:
            value = new if op == "added" else old
            kept = _scrub(value, inode, redact=False)
            if not kept and value and isinstance(value, dict | list):
                return  # all of it is ignored
            old, new = (None, kept) if op == "added" else (kept, None)
    if rnode is _ALL:
        old = None if op == "added" else REDACTED
        new = None if op == "removed" else REDACTED
    elif rnode is not None:
        old = _scrub(old, rnode, redact=True)
        new = _scrub(new, rnode, redact=True)
    out.append(Change(path, old, new, op))


def _scrub(value: Any, node: PathTree, *, redact: bool) -> Any:
    """Copy of ``value`` with parts matched by ``node`` dropped, or replaced by REDACTED.

    Only called off the hot path, for changes that sit above ignored or redacted paths.
    """
    children, star = node.children, node.star
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = children.get(key, star)
            if sub is None:
                result[key] = item
            elif sub is _ALL:
                if redact:
                    result[key] = REDACTED
            else:
                result[key] = _scrub(item, sub, redact=redact)
        return result
    if isinstance(value, list):
        keyed = _index_for(value, "name") or _index_for(value, "type")
        names: Iterable[str] = keyed if keyed else map(str, range(len(value)))
        items: list[Any] = []
        for name, item in zip(names, value, strict=True):
            sub = children.get(name, star)
            if sub is None:
                items.append(item)
            elif sub is _ALL:
                if redact:
                    items.append(REDACTED)
            else:
                items.append(_scrub(item, sub, redact=redact))
        return items
    return value


# --- watched paths (``only``) -------------------------------------------------------------
#
# The walk follows the ``only`` tree while it is partial (not the all-node). A key the tree
# cannot reach is skipped before its value is even compared; once the tree says "all of
# this", the value pair goes to the ordinary diff above. Children of a value are named by
# dict key, by list item name/type, or by index; ``_KEY``/``_ITEM``/``_INDEX`` say which,
# i.e. how a child's path is written.

_KEY: Final = 0
_ITEM: Final = 1
_INDEX: Final = 2


def _child_path(kind: int, path: str, key: str) -> str:
    if kind == _KEY:
        return _key_path(path, key)
    if kind == _ITEM:
        return _item_path(path, key)
    return f"{path}[{key}]"


def _indexed(items: list[Any]) -> dict[str, Any]:
    return {str(i): item for i, item in enumerate(items)}


def _children(value: Any) -> tuple[int, dict[str, Any]] | None:
    """How one side's children are named, and them; ``None`` for a scalar or absent value."""
    if isinstance(value, dict):
        return _KEY, value
    if isinstance(value, list):
        keyed = _index_for(value, "name") or _index_for(value, "type")
        return (_ITEM, keyed) if keyed else (_INDEX, _indexed(value))
    return None


def _only_value(
    ov: Any,
    nv: Any,
    path: str,
    *,
    onode: PathTree,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
) -> None:
    """Diff ``ov`` → ``nv`` (unequal; either may be ``_MISSING``) where ``onode`` watches
    only part of them."""
    if isinstance(ov, dict) and isinstance(nv, dict):
        _only_walk(ov, nv, _KEY, path, onode=onode, inode=inode, rnode=rnode, out=out)
        return
    if isinstance(ov, list) and isinstance(nv, list):
        keyed = _keyed_pair(ov, nv)
        if keyed is not None:
            oc, nc = keyed
            _only_walk(oc, nc, _ITEM, path, onode=onode, inode=inode, rnode=rnode, out=out)
        else:
            oc, nc = _indexed(ov), _indexed(nv)
            _only_walk(oc, nc, _INDEX, path, onode=onode, inode=inode, rnode=rnode, out=out)
        return
    # One side absent, scalar, or of another shape: walk each side on its own.
    new_side = _children(nv)
    if new_side is not None:
        kind, nc = new_side
        _only_walk({}, nc, kind, path, onode=onode, inode=inode, rnode=rnode, out=out)
    old_side = _children(ov)
    if old_side is not None:
        kind, oc = old_side
        _only_walk(oc, {}, kind, path, onode=onode, inode=inode, rnode=rnode, out=out)


def _only_walk(
    oc: dict[str, Any],
    nc: dict[str, Any],
    kind: int,
    path: str,
    *,
    onode: PathTree,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
) -> None:
    """Pair the children of both sides by name; follow only those ``onode`` watches.

    A child's path is built only once it is known to be needed (descending, or a change).
    """
    ochildren, ostar = onode.children, onode.star
    ichildren = istar = None
    if inode is not None:
        ichildren, istar = inode.children, inode.star
    rchildren = rstar = None
    if rnode is not None:
        rchildren, rstar = rnode.children, rnode.star
    isub = rsub = None
    oc_get = oc.get
    # No ``*`` here: pick the few named children in one comprehension, in document order;
    # one named child (``[*].image``, ``spec.replicas``) by a single lookup.
    new_items: Iterable[tuple[str, Any]]
    if ostar is not None:
        new_items = nc.items()
    elif len(ochildren) == 1:
        [only_key] = ochildren
        only_value = nc.get(only_key, _MISSING)
        new_items = () if only_value is _MISSING else ((only_key, only_value),)
    else:
        new_items = [(k, v) for k, v in nc.items() if k in ochildren]
    for key, nv in new_items:
        osub = ochildren.get(key, ostar)
        if osub is None:
            continue
        ov = oc_get(key, _MISSING)
        if ov is nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is _ALL:
                continue
        if osub is not _ALL:
            # Every child of ``ov`` is watched (a ``*`` level): a C-level compare is cheaper
            # than any walk. Not where patterns name keys: that walk is a few lookups.
            if osub.star is not None and ov is not _MISSING and ov == nv:
                continue
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            child = _child_path(kind, path, key)
            if isinstance(nv, dict) and isinstance(ov, dict):  # the common case, one call less
                _only_walk(ov, nv, _KEY, child, onode=osub, inode=isub, rnode=rsub, out=out)
            else:
                _only_value(ov, nv, child, onode=osub, inode=isub, rnode=rsub, out=out)
            continue
        if ov is _MISSING:
            op = "added"
        elif ov == nv:
            continue
        else:
            op = "changed"
        if rchildren is not None:
            rsub = rchildren.get(key, rstar)
        child = _child_path(kind, path, key)
        if op == "added":
            _emit(out, child, None, nv, op, inode=isub, rnode=rsub)
        else:
            _diff_value(ov, nv, child, inode=isub, rnode=rsub, out=out)
    if oc.keys() <= nc.keys():
        return
    for key, ov in oc.items():
        if key in nc:
            continue
        osub = ochildren.get(key, ostar)
        if osub is None:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is _ALL:
                continue
        if rchildren is not None:
            rsub = rchildren.get(key, rstar)
        child = _child_path(kind, path, key)
        if osub is _ALL:
            _emit(out, child, ov, None, "removed", inode=isub, rnode=rsub)
        else:
            _only_value(ov, _MISSING, child, onode=osub, inode=isub, rnode=rsub, out=out)


@functools.lru_cache(maxsize=4096)
def _path_keys(path: str) -> tuple[str, ...]:
    """``spec.containers[web].image`` → ``("spec", "containers", "web", "image")``."""
    keys: list[str] = []
    for segment in _parse_pattern(path):
        if not isinstance(segment, str):
            raise ValueError(
                f"invalid change path {path!r}: {segment.value!r} is a wildcard "
                '(a literal key is written ["*"])'
            )
        keys.append(segment)
    return tuple(keys)


def path_matches(path: str, tree: PathTree) -> bool:
    """Does the change path ``path`` lie at or below a pattern compiled into ``tree``?

    ``path`` is written as :func:`diff` writes it (``spec.containers[web].image``,
    ``metadata.labels["app.kubernetes.io/name"]``, ``spec.args[0]``) and parsed with the
    pattern grammar, so ``x.k``, ``x[k]`` and ``x["k"]`` are the same path. Whole segments
    are compared: pattern ``spec.rep`` does not match ``spec.replicas``, and a path *above*
    a pattern (``spec.containers[web]`` for ``spec.containers[*].image``) does not match;
    ``diff(..., only=tree)`` narrows such changes instead. Parsed paths are cached.
    Raises ValueError for a malformed path or one with a bare ``*``/``**`` segment.
    """
    node = tree
    for key in _path_keys(path):
        if node is _ALL:
            return True
        sub = node.children.get(key, node.star)
        if sub is None:
            return False
        node = sub
    return node is _ALL


# --- rendering ----------------------------------------------------------------------------

SHORTEN_MARKER: Final = "…"
"""Starts the suffix :func:`shorten` puts after a cut value: ``… (+N chars)``."""


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, deep nesting
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def shorten(value: Any, limit: int = 200) -> Any:
    """A change value cut down for display.

    A string longer than ``limit`` characters becomes its first ``limit`` characters
    followed by ``"… (+N chars)"`` (N characters cut; see :data:`SHORTEN_MARKER`). A dict
    or list whose compact JSON (as in the event JSON) is longer than ``limit`` becomes that
    JSON, cut the same way, as a string; one that fits is returned unchanged, as is any
    other value. Never mutates ``value``.
    """
    if limit < 0:
        raise ValueError(f"shorten() limit must be >= 0, not {limit}")
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):
        text = _compact_json(value)
    else:
        return value
    if len(text) <= limit:
        return value
    return f"{text[:limit]}{SHORTEN_MARKER} (+{len(text) - limit} chars)"


def shorten_change(change: Change, limit: int = 200) -> Change:
    """A new :class:`~kubewatch.events.Change` with the same path and op, and ``old`` /
    ``new`` passed through :func:`shorten`."""
    return Change(change.path, shorten(change.old, limit), shorten(change.new, limit), change.op)
