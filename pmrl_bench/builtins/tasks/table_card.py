"""The ``table`` task's data card, derived from its files and parameters: the files it reads with their SHA-256, and
the modalities, classes and split sizes of the data they give. A user's file carries no licence or citation, so the
card says they are not stated (the data's own terms apply)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pmrl_bench.builtins.tasks.table_sources import SPLIT_NAMES
from pmrl_bench.cards import NOT_STATED, DataCard, file_sha256


def source_files(source: str, *others: str) -> list[Path]:
    """The local files a source names: the file itself, or a directory's split files (``train.*``, ``test.*``,
    ``validation.*`` and their aliases), then ``others`` (``test_source``, ``validation_source``); none for a hub
    name."""
    files: list[Path] = []
    for given in (source, *others):
        if not given:
            continue
        path = Path(given).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.name.split(".")[0].lower() in SPLIT_NAMES)
    return files


def table_card(task: Any) -> DataCard:
    """The card of ``task`` (a ``TableTask``, which calls this from its ``card()``): reads its data (as ``load()``
    does) and hashes its files."""
    data = task.load()
    files = source_files(task.source, task.test_source, task.validation_source)
    modalities = ", ".join(m.name for m in data.modalities)
    label = f"; label {task.label or getattr(task, 'label_key', '') or 'from the file'}" if data.num_classes else ""
    card = DataCard(
        name=Path(task.source).name if files else task.source,
        description=f"your own data through the table task: modalities {modalities}{label}",
        source=", ".join(str(p) for p in files) if files else f"datasets hub: {task.source}",
        licence=NOT_STATED,
        citation=NOT_STATED,
        files={str(p): file_sha256(p) for p in files},
    )
    return card.with_data(data)
