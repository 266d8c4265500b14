"""The walk under :func:`~kubewatch.match.diff.diff`: dicts by key, keyed lists by item
name or type, other lists by index; ignored parts pruned, secret parts redacted on the
way out. Equal subtrees are skipped by ``is`` and then by ``==``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubewatch.events import REDACTED, Change
from kubewatch.match.paths import ALL, MISSING, UNSAFE_KEY, PathTree, levels_below


def key_path(path: str, key: str) -> str:
    if UNSAFE_KEY.search(key) is None:
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def item_path(path: str, name: str) -> str:
    if UNSAFE_KEY.search(name) is None and not name.isdigit():
        return f"{path}[{name}]"
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def diff_dict(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    *,
    inode: PathTree | None,
    rnode: PathTree | None,
    out: list[Change],
    path_of: Callable[[str, str], str] = key_path,
) -> None:
    """Diff two mappings: dicts by key, or named list items by name (``path_of``)."""
    ichildren, istar = levels_below(inode)
    rchildren, rstar = levels_below(rnode)
    isub = rsub = None
    old_get = old.get
    for key, nv in new.items():
        ov = old_get(key, MISSING)
        if ov is nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is ALL:
                continue
        if ov is MISSING:
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            emit_change(out, path_of(path, key), None, nv, "added", inode=isub, rnode=rsub)
        elif ov != nv:
            if rchildren is not None:
                rsub = rchildren.get(key, rstar)
            diff_value(ov, nv, path_of(path, key), inode=isub, rnode=rsub, out=out)
    if old.keys() <= new.keys():
        return
    for key, ov, isub, rsub in gone(old, new, inode=inode, rnode=rnode):
        emit_change(out, path_of(path, key), ov, None, "removed", inode=isub, rnode=rsub)


def gone(
    old: dict[str, Any], new: dict[str, Any], *, inode: PathTree | None, rnode: PathTree | None
) -> Iterator[tuple[str, Any, PathTree | None, PathTree | None]]:
    """The keys of ``old`` missing from ``new`` and not ignored, each with its old value
    and its ignore and redact subtrees."""
    ichildren, istar = levels_below(inode)
    rchildren, rstar = levels_below(rnode)
    for key, ov in old.items():
        if key in new:
            continue
        isub = rsub = None
        if ichildren is not None:
            isub = ichildren.get(key, istar)
            if isub is ALL:
                continue
        if rchildren is not None:
            rsub = rchildren.get(key, rstar)
        yield key, ov, isub, rsub


def diff_value(
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
        diff_dict(ov, nv, path, inode=inode, rnode=rnode, out=out)
    elif isinstance(nv, list) and isinstance(ov, list):
        _diff_list(ov, nv, path, inode=inode, rnode=rnode, out=out)
    else:
        emit_change(out, path, ov, nv, "changed", inode=inode, rnode=rnode)


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


def index_for(items: list[Any], field: str) -> dict[str, dict[str, Any]] | None:
    index = _index_by(items, field)
    if index is None or (field == "type" and any("name" in item for item in items)):
        return None
    return index


def keyed_pair(
    old: list[Any], new: list[Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None:
    """Index both lists by ``name``, else by ``type``; an empty side takes the other's key."""
    for field in ("name", "type"):
        new_index = index_for(new, field)
        if new_index is None:
            continue
        old_index = index_for(old, field)
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
    keyed = keyed_pair(old, new)
    if keyed is not None:
        diff_dict(*keyed, path, inode=inode, rnode=rnode, out=out, path_of=item_path)
        return
    ichildren, istar = levels_below(inode)
    rchildren, rstar = levels_below(rnode)
    isub = rsub = None

    if len(old) != len(new):
        emit_change(out, path, old, new, "changed", inode=inode, rnode=rnode)
        return
    for i, nv in enumerate(new):
        ov = old[i]
        if ov is nv or ov == nv:
            continue
        if ichildren is not None:
            isub = ichildren.get(str(i), istar)
            if isub is ALL:
                continue
        if rchildren is not None:
            rsub = rchildren.get(str(i), rstar)
        diff_value(ov, nv, f"{path}[{i}]", inode=isub, rnode=rsub, out=out)


def emit_change(
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
    if rnode is ALL:
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
            elif sub is ALL:
                if redact:
                    result[key] = REDACTED
            else:
                result[key] = _scrub(item, sub, redact=redact)
        return result
    if isinstance(value, list):
        keyed = index_for(value, "name") or index_for(value, "type")
        names: Iterable[str] = keyed if keyed else map(str, range(len(value)))
        items: list[Any] = []
        for name, item in zip(names, value, strict=True):
            sub = children.get(name, star)
            if sub is None:
                items.append(item)
            elif sub is ALL:
                if redact:
                    items.append(REDACTED)
            else:
                items.append(_scrub(item, sub, redact=redact))
        return items
    return value
