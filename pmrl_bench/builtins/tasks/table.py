"""A user dataset as a task: any table that Hugging Face ``datasets`` can read, with columns mapped to modalities,
or a multi-view array file (``.mat``, ``.npz``, ``.h5``) whose views are the modalities. ``docs/data.md`` walks
through every format.

    pmrl-bench run --objectives pmrl,infonce --tasks table \\
        --set task.table.source=my.parquet --set task.table.columns=a,b,c --set task.table.label=y
    pmrl-bench run --objectives pmrl,infonce --tasks table --set task.table.source=Caltech101-20.mat

Parameters (``--set task.table.KEY=VALUE``):

``source``
    Where the data is. One local ``.parquet``, ``.csv``, ``.json`` or ``.jsonl`` file, or one multi-view ``.mat``
    (MATLAB v5 or v7.3), ``.npz``, ``.h5`` or ``.hdf5`` file, which the task splits itself; or a directory holding
    a published split as files named ``train.*`` and ``test.*`` (and optionally ``validation.*``, also spelt
    ``valid``, ``val`` or ``dev``), in any of those formats; or a ``datasets`` hub name (see *Hub* below).
``test_source``, ``validation_source``
    A published split given file by file instead of as a directory: ``source`` is then the train file.
``views_key``, ``label_key``, ``views`` (multi-view files)
    Where the views are: a cell array, list, group or views × n × d array under ``X``, ``data``, ``fea``, ``views``
    or ``features``, or numbered keys (``X1, X2``, ``arr_0, arr_1``), unless ``views_key`` names the key (or
    ``a,b,c``: one key per view). The labels are under ``Y``, ``y``, ``gt``, ``truth``, ``labels``, ``label``,
    ``gnd`` or ``target`` unless ``label_key`` names the key; any integer coding (1-based, negative) or class names.
    Without ``columns`` every view is a modality, named from the file (group members, struct fields, keys) or
    ``v0, v1, ...``; ``views=0,2,3`` (indices or names) keeps some. A view stored d × n is recognised by the label
    count and transposed (one line says so); a sparse view is densified after a memory check.
``missing`` (error)
    ``error``: a missing value (null, NaN) stops the run with one line naming it. ``drop``: rows with a missing value
    in a used column or view, or a missing label, are dropped before the split; the count is printed and recorded
    in each result (``splits.dropped``).
``columns``
    Columns to modalities (tables need it; multi-view files may use it, their views being the columns): ``a,b,c``
    makes one modality per column; ``img=pixels,meta=age+height+weight`` names them and joins numeric columns into
    one vector. A column of numbers or of equal-length number lists is a vector
    modality, nested lists (rows of 2-D or 3-D arrays) an image modality, text a text modality (token ids from
    the shipped word tokenizer).
``text_columns``
    Columns that are text even where a value looks like a number (``caption,notes``). Without it, a column is text
    only when none of its values is a number; a column of numbers with one cell such as ``abc`` or ``1,5`` is an
    error naming that cell, never a silent text modality.
``label``
    An optional class column (integers or strings); it enables the classification probes.
``standardize`` (true)
    Scale every feature of a vector modality to zero mean and unit variance, with statistics of the final train
    rows only (after validation is carved out); validation and test rows use the same statistics. Encoders get
    comparable scales whatever units a column is in (a view whose values are around 1e4 would otherwise leave
    every objective at chance on it). Image and text modalities are left as they are.
``test_size`` (0.2), ``val_size`` (0.15), ``seed`` (0)
    Without a shipped test split, a seeded split (stratified by the label when every class allows) holds out
    ``test_size`` of the rows for testing; without a shipped validation split, ``val_size`` of the train rows are
    held out for validation the same way. Shipped splits are used as they are.
``text_length`` (32)
    Tokens kept per text value.

Reading: with ``datasets`` installed (``pip install 'pmrl-bench[data]'``) files are read through
``load_dataset(format, data_files={"train": ..., "test": ...})``; without it, or when Arrow cannot hold a file
as it is, with pandas (parquet then needs pyarrow).

Hub: a source that is no local path is read as a ``datasets`` hub name, from the local Hugging Face cache only
(``HF_HUB_OFFLINE=1`` during the read), so an unknown name fails at once instead of retrying the network. Set
``PMRL_BENCH_HUB=1`` to let it download from the hub.

Bad data fails before training with one line naming the column and the row as the file numbers it: for CSV and
JSON-lines files the line (1-based; a CSV's header is line 1; a record whose quoted field holds a newline is named
by the line it starts on), for parquet, JSON, multi-view files and hub splits the row index (0-based). A CSV header
naming a column twice is an error.

Size: a local source above 4 GiB (all its files together) is refused before it is read; set
``PMRL_BENCH_MAX_TABLE_SIZE`` (``16G``, ``500M``, bytes, ``0`` for no limit) to change the limit. Reading a source of
64 MiB or more says so in one line and, on a terminal, shows a progress bar.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks.table_columns import (
    column_values,
    label_ids,
    missing_rows,
    parse_columns,
    standardise,
)
from pmrl_bench.builtins.tasks.table_multiview import ViewKeys
from pmrl_bench.builtins.tasks.table_sources import ENV_HUB, READERS, SPLIT_NAMES, Origin, Source, read_source
from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer, words
from pmrl_bench.cards import DataCard
from pmrl_bench.components import TEXT, VECTOR, Modality, Split, TaskData
from pmrl_bench.console import say
from pmrl_bench.errors import DataError
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size, content_order, seeded_carve, validation_rows

MISSING = ("error", "drop")

__all__ = ["ENV_HUB", "Origin", "Source", "TableTask", "column_values", "label_ids", "parse_columns", "read_source",
           "standardise"]


# -- the task ----------------------------------------------------------------------------------------------------------


class TableTask:
    """A user dataset (local parquet/CSV/JSON files, multi-view .mat/.npz/.h5 files, or a hub name with
    ``datasets``): columns or views mapped to modalities, optional labels, the source's own train/validation/test
    split or seeded ones.

    Args:
        source: a local .parquet, .csv, .json, .jsonl, .mat, .npz, .h5 or .hdf5 file, a directory holding train and
            test (and optionally validation) files, or a datasets hub name.
        columns: columns as modalities: "a,b,c", or "img=pixels,meta=age+height" to name them and join columns;
            empty for a multi-view file: every view is a modality.
        label: the class column; empty: no labels (retrieval only), or a multi-view file's labels where found.
        test_size: share of the rows held out for test when the source has no test split.
        text_length: the most tokens kept of a text column's rows.
        val_size: share of the training rows held out for validation when the source has no validation split.
        seed: fixes the train/validation/test split.
        test_source: a separate file holding the test split.
        validation_source: a separate file holding the validation split.
        standardize: scale vector features by the mean and std of the train rows.
        text_columns: columns to read as text even where values look like numbers (comma-separated).
        views_key: a multi-view file's key holding the views (or KEY1,KEY2,...: one key per view); empty: found.
        label_key: a multi-view file's key holding the labels; empty: found (Y, gt, truth, labels, ...).
        views: the views of a multi-view file to use, as 0-based indices or names ("0,2,3"); empty: all.
        missing: "error" (a missing value stops the run) or "drop" (rows with one are dropped before the split).
    """

    def __init__(
        self, source: str = "", columns: str = "", label: str = "", test_size: float = 0.2, text_length: int = 32,
        val_size: float = DEFAULT_VAL_SIZE, seed: int = 0, test_source: str = "", validation_source: str = "",
        standardize: bool = True, text_columns: str = "", views_key: str = "", label_key: str = "", views: str = "",
        missing: str = "error",
    ) -> None:
        if not source:
            raise ValueError("set the data file with --set task.table.source=PATH (parquet, csv, json or jsonl, "
                             "a multi-view .mat, .npz or .h5 file, or a directory holding train and test files)")
        is_table = source.lower().endswith(tuple(READERS))
        if is_table and (views_key or label_key or views):
            raise ValueError("views_key, label_key and views apply to multi-view .mat, .npz and .h5 files; "
                             f"{source!r} is a table: map its columns with columns= and label=")
        if not columns and is_table:
            raise ValueError("set the modality columns with --set task.table.columns=a,b,c (or name=col1+col2,...); "
                             "only multi-view .mat, .npz and .h5 files need none")
        if columns and views:
            raise ValueError("give views (which views are modalities) or columns (how columns map to "
                             "modalities), not both")
        if label and label_key and label != label_key:
            raise ValueError(f"label={label!r} and label_key={label_key!r} disagree; for a multi-view file give "
                             "label_key only")
        if missing not in MISSING:
            raise ValueError(f"missing must be one of {', '.join(MISSING)}, got {missing!r}")
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
        if text_length < 1:
            raise ValueError(f"text_length must be >= 1, got {text_length}")
        check_val_size(val_size)
        self.mapping = parse_columns(columns) if columns else {}
        self.keys = ViewKeys(views_key, label_key or label, views)
        self.missing = missing
        mapped = {c for cols in self.mapping.values() for c in cols}
        self.text_columns = [c.strip() for c in text_columns.split(",") if c.strip()]
        unknown = [c for c in self.text_columns if c not in mapped]
        if unknown:
            raise ValueError(f"text_columns names {unknown[0]!r}, which columns does not map; "
                             f"mapped columns: {', '.join(sorted(mapped))}")
        self.source, self.test_source, self.validation_source = source, test_source, validation_source
        self.label, self.val_size, self.standardize = label, val_size, standardize
        self.test_size, self.text_length, self.seed = test_size, text_length, seed
        self._loaded: TaskData | None = None  # load() reads the files once per task object; card() reuses it

    def card(self) -> DataCard:
        """The data card, derived from the files (with their SHA-256) and the parameters; reads the data."""
        from pmrl_bench.builtins.tasks.table_card import table_card

        return table_card(self)

    def split_rows(self, n: int, labels: np.ndarray | None,
                   order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Seeded train and test row indices of a source without a test split (stratified when labels allow), drawn
        over positions in ``order`` (the rows' content order), so the row order of the file does not matter."""
        if n < 4:
            raise DataError(f"task 'table': {self.source!r} has {n} rows; it needs at least 4 to split")
        try:
            return seeded_carve(n, labels, int(np.ceil(self.test_size * n)), self.seed, order,
                                f"{self.test_size:.0%}", "test")
        except ValueError as exc:
            raise DataError(f"task 'table': {exc}") from None

    def _roles(self, sources: dict[str, Source]) -> tuple[str, str | None, str | None]:
        """The source splits that serve as (train, test, validation); hub splits may be spelt "valid" or "dev"."""
        by_role: dict[str, str] = {}
        for name in sources:  # the first of each role wins
            by_role.setdefault(SPLIT_NAMES.get(name.lower(), name), name)
        test, validation = by_role.get("test"), by_role.get("validation")
        train = by_role.get("train") or next((n for n in sources if n not in (test, validation)), None)
        if train is None:
            raise DataError(f"task 'table': {self.source!r} has no train split (it has {', '.join(sources)})")
        return train, test, validation

    def _parts(self, sources: dict[str, Source], labels: dict[str, np.ndarray],
               orders: dict[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        """``{"train"|"validation"|"test": (source split, its rows)}``: shipped splits whole, the rest carved; rows in
        content order (``orders``: each source split's), so carves and statistics ignore the files' row order."""
        train, test, validation = self._roles(sources)
        n = len(sources[train].frame)
        if test is not None:
            parts = {"train": (train, orders[train]), "test": (test, orders[test])}
        else:
            train_rows, test_rows = self.split_rows(n, labels.get(train), orders[train])
            parts = {"train": (train, train_rows), "test": (train, test_rows)}
        if validation is not None:
            parts["validation"] = (validation, orders[validation])
            return parts
        # validation comes out of the train rows before any statistic is fitted on them; the rows are in content
        # order already, so the draw's positions depend on the content
        rows = parts["train"][1]
        try:
            kept, held_out = validation_rows(len(rows), labels[train][rows] if train in labels else None,
                                             self.val_size, self.seed)
        except ValueError as exc:
            raise DataError(f"task 'table': {exc}") from None
        parts["train"], parts["validation"] = (train, rows[kept]), (train, rows[held_out])
        return parts

    def _mapping(self, sources: dict[str, Source]) -> tuple[dict[str, list[str]], str]:
        """Modalities to columns (``columns``, or every view of a multi-view file) and the label column ("": none);
        every split of a multi-view source must hold the train file's views, and its labels under one name."""
        train_name, _, _ = self._roles(sources)
        train = sources[train_name]
        if not train.views:
            if not self.mapping:
                raise DataError(f"task 'table': {train.origin.name} is a table; set the modality columns with "
                                "--set task.table.columns=a,b,c (only multi-view .mat, .npz and .h5 files need none)")
            return self.mapping, self.label
        label = train.label_column or ""
        for split, source in sources.items():
            if not self.mapping and list(source.views) != list(train.views):
                raise DataError(f"task 'table': {source.origin.name} has views {', '.join(source.views)}, but "
                                f"{train.origin.name} has {', '.join(train.views)}; every split needs the same views")
            if label and source.label_column is None:
                raise DataError(f"task 'table': {source.origin.name} holds no labels, but {train.origin.name} holds "
                                f"them under {label!r}; give every split its labels (or none)")
            if label and source.label_column != label:  # e.g. Y in train.mat, gt in test.mat: one name
                sources[split] = Source(source.frame.rename(columns={source.label_column: label}), source.origin,
                                        source.views, source.where, label)
        return self.mapping or {name: [name] for name in train.views}, label

    def _without_missing(self, sources: dict[str, Source], used: list[str]) -> tuple[dict[str, Source], int]:
        """``missing=error``: a view with a NaN is one line naming the file, the key and the row (table columns
        are checked by column_values). ``missing=drop``: rows with a missing value in a used column dropped, and
        their count (printed per file)."""
        if self.missing == "error":
            for source in sources.values():
                for column in (c for c in used if c in source.views):
                    bad = missing_rows(source, column)
                    if bad.any():
                        raise DataError(f"task 'table', view {column!r} ({source.where.get(column, column)}): "
                                        f"{source.origin.row(int(np.argmax(bad)))} holds NaN; expected numbers "
                                        "(or drop rows with missing values: --set task.table.missing=drop)")
            return sources, 0
        dropped = 0
        for split, source in sources.items():
            bad = np.zeros(len(source.frame), dtype=bool)
            for column in used:
                bad |= missing_rows(source, column)
            if bad.any():
                say(f"task 'table': dropped {int(bad.sum())} of {len(bad)} rows of {source.origin.name} with a "
                    f"missing value (missing=drop)")
                sources[split] = source.take(np.flatnonzero(~bad))
                dropped += int(bad.sum())
        return sources, dropped

    def load(self) -> TaskData:
        if self._loaded is None:
            self._loaded = self._read()
        return self._loaded

    def _read(self) -> TaskData:
        read = read_source(self.source, self.test_source, self.validation_source, self.keys)
        sources = {name: read[name] for name in self._roles(read) if name is not None}  # e.g. no "unsupervised"
        mapping, label = self._mapping(sources)
        used = [c for cs in mapping.values() for c in cs] + ([label] if label else [])
        sources, dropped = self._without_missing(sources, used)
        labels, num_classes = label_ids(sources, label) if label else ({}, None)
        # Check and convert every column on the source as it is, so errors name rows as the user numbers them.
        columns = {
            split: {c: column_values(source, c, c in self.text_columns) for cs in mapping.values() for c in cs}
            for split, source in sources.items()
        }
        orders = {split: modalities_order(mapping, columns[split], labels.get(split)) for split in sources}
        parts = self._parts(sources, labels, orders)
        modalities: list[Modality] = []
        inputs: dict[str, dict[str, Any]] = {part: {} for part in parts}
        for name, cols in mapping.items():
            modalities.append(self._modality(name, cols, columns, parts, inputs))
        split_labels = {part: labels[split][rows] if labels else None for part, (split, rows) in parts.items()}
        return TaskData(
            modalities,
            Split(inputs["train"], split_labels["train"]),
            Split(inputs["test"], split_labels["test"]),
            num_classes=num_classes,
            validation=Split(inputs["validation"], split_labels["validation"]),
            dropped=dropped,
        )

    def _modality(self, name: str, cols: list[str], columns: dict[str, dict[str, tuple[Any, str]]],
                  parts: dict[str, tuple[str, np.ndarray]], inputs: dict[str, dict[str, Any]]) -> Modality:
        """Modality ``name`` from its columns: each part's inputs written into ``inputs``."""

        def take(values: Any, rows: np.ndarray) -> Any:
            return [values[i] for i in rows] if isinstance(values, list) else values[rows]

        kinds = {columns[split][c][1] for split in columns for c in cols}
        if len(cols) > 1 and kinds != {VECTOR}:
            raise DataError(f"task 'table', modality {name!r}: only numeric vector columns can be joined with '+', "
                            f"but {'+'.join(cols)} includes {', '.join(sorted(kinds - {VECTOR}))} columns")
        if len(kinds) > 1:
            raise DataError(f"task 'table', column {cols[0]!r} holds {' and '.join(sorted(kinds))} "
                            "in different splits")
        kind = kinds.pop()
        values = {part: [take(columns[split][c][0], rows) for c in cols] for part, (split, rows) in parts.items()}
        if kind == TEXT:
            tokenizer = WordTokenizer.fit(values["train"][0])
            longest = max(len(words(t)) for texts in values.values() for t in texts[0])
            length = min(self.text_length, max(1, longest))
            for part, texts in values.items():
                inputs[part][name] = tokenizer.encode(texts[0], length)
            return Modality(name, TEXT, (length,), info=tokenizer.info())
        arrays = {part: np.concatenate(a, axis=1) if kind == VECTOR else a[0] for part, a in values.items()}
        shapes = {part: a.shape[1:] for part, a in arrays.items()}
        if len(set(shapes.values())) > 1:
            shown = ", ".join(f"{part} rows {shape}" for part, shape in shapes.items())
            raise DataError(f"task 'table', modality {name!r}: the splits' rows differ in shape: {shown}")
        if kind == VECTOR and self.standardize:
            arrays = standardise(arrays)
        for part, array in arrays.items():
            inputs[part][name] = array
        return Modality(name, kind, tuple(shapes["train"]))


def modalities_order(mapping: dict[str, list[str]], columns: dict[str, tuple[Any, str]],
                     labels: np.ndarray | None) -> np.ndarray:
    """A source split's rows in content order: each modality (in name order) as the concatenation of its columns,
    and the label; the same rows read by another task (``mfeat``'s views, say) rank the same way."""
    modalities = []
    for name in sorted(mapping):
        values = [columns[c][0] for c in mapping[name]]
        if len(values) > 1:  # joined vector columns: one row of the modality, as the encoder sees it
            values = [np.concatenate([np.asarray(v, dtype=np.float32).reshape(len(v), -1) for v in values], axis=1)]
        modalities.append(values[0])
    return content_order(modalities, labels)
