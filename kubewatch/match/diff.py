"""Structured diff of two Kubernetes objects given as plain JSON dicts.

Runs on every watch update, so it is written for the common case: two large objects that
differ in a few leaves. Equal subtrees are skipped by ``is`` and then by ``==`` (a C-level
deep compare), and only the unequal branches are walked in Python; paths are built only
along those branches.

Paths are written in the language of :mod:`kubewatch.match.paths`.

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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from kubewatch.events import Change
from kubewatch.match.paths import ALL, MISSING, PathTree, levels_below
from kubewatch.match.walk import (
    diff_dict,
    diff_value,
    emit_change,
    gone,
    index_for,
    item_path,
    key_path,
    keyed_pair,
)

__all__ = ["covers", "diff", "graft", "split_ignored"]


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
    if only is None or only is ALL:
        if old == new:
            return []
        diff_dict(old, new, "", inode=ignore, rnode=redact, out=out)
    else:
        _only_value(old, new, "", onode=only, inode=ignore, rnode=redact, out=out)
    return out


def split_ignored(obj: dict[str, Any], ignore: PathTree) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(kept, rest)``: ``obj`` without what ``ignore`` matches through dict keys, and what
    that left out, as a sparse tree (:func:`graft` puts it back). Only the dicts on the way
    are copied; lists are kept whole.

    Two objects with equal ``kept`` parts have no changes under ``ignore``, nor under any
    ignore tree that :func:`covers` it, whatever ``only`` and ``redact`` say: every
    difference lies at or below an ignored key, which the diff skips (a list on the way to
    an ignored path is equal as a whole, which the diff skips too). The Store relies on
    this to recognise a status-only update without decoding the old object.
    """
    children, star = ignore.children, ignore.star
    kept: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, item in obj.items():
        sub = children.get(key, star)
        if sub is ALL:
            rest[key] = item
        elif sub is not None and isinstance(item, dict):  # ignored paths below: split it
            kept[key], below = split_ignored(item, sub)
            if below:
                rest[key] = below
        else:  # nothing ignored below, or not a dict (kept whole)
            kept[key] = item
    return kept, rest


def graft(kept: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    """Put what :func:`split_ignored` left out back into ``kept`` (in place; returned):
    a key of ``rest`` that ``kept`` has is a dict to graft into, any other is a value left
    out whole. Grafted keys come after the others of their dict."""
    for key, value in rest.items():
        if key in kept:
            graft(kept[key], value)
        else:
            kept[key] = value
    return kept


def covers(big: PathTree, small: PathTree) -> bool:
    """True when every path ``small`` matches as a whole, ``big`` matches as a whole too."""
    if big is ALL:
        return True
    if small is ALL:
        return False
    pairs = [(big.children.get(k, big.star), sub) for k, sub in small.children.items()]
    if small.star is not None:
        pairs += [(sub, small.star) for k, sub in big.children.items() if k not in small.children]
        pairs.append((big.star, small.star))
    return all(b is not None and covers(b, s) for b, s in pairs)


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
        return key_path(path, key)
    if kind == _ITEM:
        return item_path(path, key)
    return f"{path}[{key}]"


def _indexed(items: list[Any]) -> dict[str, Any]:
    return {str(i): item for i, item in enumerate(items)}


def _children(value: Any) -> tuple[int, dict[str, Any]] | None:
    """How one side's children are named, and them; ``None`` for a scalar or absent value."""
    if isinstance(value, dict):
        return _KEY, value
    if isinstance(value, list):
        keyed = index_for(value, "name") or index_for(value, "type")
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
    """Diff ``ov`` → ``nv`` (unequal; either may be ``MISSING``) where ``onode`` watches
    only part of them."""
    walks: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (kind, old, new) children
    if isinstance(ov, dict) and isinstance(nv, dict):
        walks.append((_KEY, ov, nv))
    elif isinstance(ov, list) and isinstance(nv, list):
        keyed = keyed_pair(ov, nv)
        walks.append((_ITEM, *keyed) if keyed is not None else (_INDEX, _indexed(ov), _indexed(nv)))
    else:  # one side absent, scalar, or of another shape: walk each side on its own
        new_side = _children(nv)
        if new_side is not None:
            walks.append((new_side[0], {}, new_side[1]))
        old_side = _children(ov)
        if old_side is not None:
            walks.append((old_side[0], old_side[1], {}))
    for kind, oc, nc in walks:
        _only_walk(oc, nc, kind, path, onode=onode, inode=inode, rnode=rnode, out=out)


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
    ichildren, istar = levels_below(inode)
    rchildren, rstar = levels_below(rnode)
    isub = rsub = None
    oc_get = oc.get
    # No ``*`` here: pick the few named children in one comprehension, in document order;
    # one named child (``[*].image``, ``spec.replicas``) by a single lookup.
    new_items: Iterable[tuple[str, Any]]
    if ostar is not None:
        new_items = nc.items()
    elif len(ochildren) == 1:
        [only_key] = ochildren
        only_value = nc.get(only_key, MISSING)
        new_items = () if only_value is MISSING else ((only_key, only_value),)
    else:
        new_items = [(k, v) for k, v in nc.items() if k in ochildren]
    for key, nv in new_items:
        osub = ochildren.get(key, ostar)
        if osub is None:
            continue
        ov = oc_get(key, MISSING)
        if ov is nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is ALL:
                continue
        if osub is not ALL:
            # Every child of ``ov`` is watched (a ``*`` level): a C-level compare is cheaper
            # than any walk. Not where patterns name keys: that walk is a few lookups.
            if osub.star is not None and ov is not MISSING and ov == nv:
                continue
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            child = _child_path(kind, path, key)
            if isinstance(nv, dict) and isinstance(ov, dict):  # the common case, one call less
                _only_walk(ov, nv, _KEY, child, onode=osub, inode=isub, rnode=rsub, out=out)
            else:
                _only_value(ov, nv, child, onode=osub, inode=isub, rnode=rsub, out=out)
            continue
        if ov is MISSING:
            op = "added"
        elif ov == nv:
            continue
        else:
            op = "changed"
        if rchildren is not None:
            rsub = rchildren.get(key, rstar)
        child = _child_path(kind, path, key)
        if op == "added":
            emit_change(out, child, None, nv, op, inode=isub, rnode=rsub)
        else:
            diff_value(ov, nv, child, inode=isub, rnode=rsub, out=out)
    if oc.keys() <= nc.keys():
        return
    for key, ov, isub, rsub in gone(oc, nc, inode=inode, rnode=rnode):
        osub = ochildren.get(key, ostar)
        if osub is None:
            continue
        child = _child_path(kind, path, key)
        if osub is ALL:
            emit_change(out, child, ov, None, "removed", inode=isub, rnode=rsub)
        else:
            _only_value(ov, MISSING, child, onode=osub, inode=isub, rnode=rsub, out=out)
