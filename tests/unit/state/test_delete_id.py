"""A delete reported again after a crash is a duplicate with the same id, never a second id.

A live delete writes its event's spool row, then removes the object from the checkpoint.
When a commit falls between the two and the process dies there (``kill -9``), the next
start delivers the spooled delete *and* finds the object gone again by comparing its first
list with the checkpoint. The live delete carries the deletion's resourceVersion, the
tombstone the last one kubewatch had: both must have one ``id`` for receivers to see one
delete.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kubewatch.kube import DeletedFinalStateUnknown
from kubewatch.state import DB_FILE, State, open_state
from kubewatch.watch.normalize import EventBuilder, ResourceInfo
from tests.unit.kube.test_informer import FakeListerWatcher, cm, ev, pages
from tests.unit.state.test_state import informer

BUILDER = EventBuilder("test", ResourceInfo("ConfigMap", "v1", "configmaps"))


class Spooler:
    """Reports deletes into the spool, as the app does; ``after_delete`` runs between a
    delete's spool row and the informer's checkpoint write (the crash point)."""

    def __init__(self, state: State, after_delete: Any = None) -> None:
        self.state = state
        self.after_delete = after_delete
        self.ids: list[str] = []

    def on_add(self, obj: dict[str, Any], is_initial_list: bool) -> None:
        pass

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        pass

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        unknown = isinstance(obj, DeletedFinalStateUnknown)
        event = BUILDER.deleted(
            obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj,
            final_state_unknown=unknown,
        )
        self.ids.append(event.id)
        self.state.spool.put(event, ("s",))
        if self.after_delete is not None:
            self.after_delete()


def run(state: State, lw: FakeListerWatcher, handler: Spooler) -> None:
    inf, _ = informer(lw, state.checkpoint)
    inf.add_handler(handler)
    inf.start()
    assert lw.done.wait(5)
    inf.stop()


def copy_committed(source: Path, target: Path) -> None:
    """What a ``kill -9`` now would leave: everything committed, nothing else."""
    target.mkdir()
    live = sqlite3.connect(source / DB_FILE)
    copy = sqlite3.connect(target / DB_FILE)
    live.backup(copy)
    copy.close()
    live.close()


def test_a_delete_killed_between_spool_and_checkpoint_has_one_id_after_restart(
    tmp_path: Path,
) -> None:
    live_dir, crashed_dir = tmp_path / "live", tmp_path / "crashed"
    state = open_state(str(live_dir))
    assert state is not None

    def crash_here() -> None:
        # The writer commits what is queued (the delete's spool row, not yet the checkpoint
        # row: the informer writes it after this handler returns); the crash keeps that.
        assert state.db.flush(10)
        copy_committed(live_dir, crashed_dir)

    handler = Spooler(state, crash_here)
    run(state, FakeListerWatcher([pages(1, cm("a", 1))], [[ev("DELETED", cm("a", 2))]]), handler)
    state.close()
    assert len(handler.ids) == 1  # the live delete

    # The restart over what the crash left: the spool, then the first list (without "a").
    again = open_state(str(crashed_dir))
    assert again is not None
    spooled = [event.id for _, event in again.spool.recover()]
    restarted = Spooler(again)
    run(again, FakeListerWatcher([pages(3)], []), restarted)
    again.close()
    assert spooled == handler.ids  # the live delete, from the spool
    assert len(restarted.ids) == 1  # and the tombstone of the comparison: the same delete
    assert set(spooled + restarted.ids) == set(handler.ids), "one delete, two ids"
