"""shared/workspace/outbox.py: what the local host reads back from an outbox folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.workspace.outbox import FolderEventSink, pending, read


def test_published_events_read_back_in_order(tmp_path: Path) -> None:
    sink = FolderEventSink(tmp_path / "workspace")
    sink.publish([{"id": "1", "eventType": "A"}])
    sink.publish([{"id": "2", "eventType": "B"}, {"id": "3", "eventType": "C"}])
    files = pending(tmp_path / "workspace")
    assert [[e["id"] for e in read(f)] for f in files] == [["1"], ["2", "3"]]


@pytest.mark.parametrize("body", ['{"id": "1"}', '[{"id": "1"}, 2]', '"text"'])
def test_a_file_that_is_not_a_list_of_event_objects_is_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "0001-bad.json"
    path.write_text(body)
    with pytest.raises(ValueError, match=r"0001-bad\.json: expected a JSON list of event objects"):
        read(path)
