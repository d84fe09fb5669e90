"""Trifeatures, trimodal: two rendered images and a caption with shared, pairwise and synergistic attributes.

After Hermann & Lampinen (2020) and the bimodal version in CoMM (Dufumier et al.): 10 shapes x 10 textures x
10 colours, each shape rotated and placed at random on a grey background, the texture rotated with a random
phase. Rendered analytically and vectorised with numpy at 32 px, so the task builds in about a second.

One instance is ``image1 = (s, t1, c1)``, ``image2 = (s, t2, c2)`` and a caption naming ``s``, ``c1``, ``t2``
and a code word ``(t1 + c2) mod 10``:

* the shape ``s`` is shared by all three modalities (it is also the class label);
* ``c1`` is shared by image1 and the caption only, ``t2`` by image2 and the caption only;
* the code is synergistic: it is independent of each image alone and fixed by both together;
* ``t1`` and ``c2`` matter only through the code; poses and caption wording are unique to their modality.

Test instances have distinct caption attributes ``(s, c1, t2, code)``, none of which occur in training.
"""

from __future__ import annotations

import numpy as np

from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer, words
from pmrl_bench._version import __version__
from pmrl_bench.cards import DataCard
from pmrl_bench.components import IMAGE, TEXT, Modality, Split, TaskData
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size

SHAPES = ("triangle", "square", "plus", "circle", "tee", "rhombus", "pentagon", "star", "fivesquare", "trapezoid")
TEXTURES = ("solid", "stripes", "grid", "hexgrid", "dots", "noise", "triangles", "zigzags", "rain", "pluses")
COLOURS = {
    "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
    "pink": (1.0, 0.4, 1.0), "cyan": (0.0, 1.0, 1.0), "purple": (0.3, 0.0, 0.5), "ocean": (0.1, 0.4, 0.5),
    "orange": (1.0, 0.6, 0.0), "white": (1.0, 1.0, 1.0),
}
CODES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
TEMPLATES = (
    "a {c1} {s} with {t2} texture tagged {code}",
    "{s} coloured {c1} and filled with {t2} , code {code}",
    "picture of a {s} : colour {c1} , pattern {t2} , mark {code}",
)
BACKGROUND = 0.5
N_ATTRIBUTE = 10


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _pentagon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    inside = np.ones_like(x, dtype=bool)
    for k in range(5):  # a regular pentagon: five half-planes, normals between its vertices
        normal = np.pi / 2 + 2 * np.pi * k / 5 + np.pi / 5
        inside &= x * np.cos(normal) + y * np.sin(normal) <= 0.85 * np.cos(np.pi / 5)
    return inside


def _star(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.hypot(x, y) <= 0.4 + 0.55 * np.maximum(0.0, np.cos(5 * (np.arctan2(y, x) - np.pi / 2))) ** 2


def _fivesquare(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    centres = [(0.0, 0.0), (0.6, 0.6), (0.6, -0.6), (-0.6, 0.6), (-0.6, -0.6)]
    return np.any([np.maximum(np.abs(x - cx), np.abs(y - cy)) <= 0.25 for cx, cy in centres], axis=0)


# Each shape in its own frame, which spans [-1, 1] on both axes (y points up); order as in SHAPES.
SHAPE_RULES = (
    lambda x, y: (y >= -0.7) & (np.abs(x) <= 0.9 * (0.9 - y) / 1.6),                                     # triangle
    lambda x, y: np.maximum(np.abs(x), np.abs(y)) <= 0.75,                                                # square
    lambda x, y: ((np.abs(x) <= 0.3) & (np.abs(y) <= 0.9)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 0.9)),   # plus
    lambda x, y: np.hypot(x, y) <= 0.85,                                                                  # circle
    lambda x, y: ((np.abs(x) <= 0.9) & (y >= 0.45) & (y <= 0.9)) | ((np.abs(x) <= 0.25) & (np.abs(y) <= 0.9)),  # tee
    lambda x, y: np.abs(x) + np.abs(y) <= 0.95,                                                           # rhombus
    _pentagon,
    _star,
    _fivesquare,
    lambda x, y: (np.abs(y) <= 0.6) & (np.abs(x) <= 0.9 - 0.5 * (y + 0.6) / 1.2),                         # trapezoid
)


def _hexgrid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A plate with holes on a triangular lattice (two offset rectangular lattices)."""
    sqrt3 = np.sqrt(3.0)
    first = np.hypot(a - np.round(a), b - sqrt3 * np.round(b / sqrt3))
    shifted = b - sqrt3 / 2
    second = np.hypot(a - 0.5 - np.round(a - 0.5), shifted - sqrt3 * np.round(shifted / sqrt3))
    return np.minimum(first, second) > 0.3


def _pluses(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da, db = np.abs(_frac(a) - 0.5), np.abs(_frac(b) - 0.5)
    return ((da < 0.15) & (db < 0.42)) | ((db < 0.15) & (da < 0.42))


# Each texture in texture coordinates (a, b), measured in periods; order as in TEXTURES ("noise" is drawn apart).
TEXTURE_RULES = (
    lambda a, b: np.ones_like(a, dtype=bool),                                             # solid
    lambda a, b: _frac(a) < 0.5,                                                          # stripes
    lambda a, b: (_frac(a) < 0.3) | (_frac(b) < 0.3),                                     # grid
    _hexgrid,
    lambda a, b: np.hypot(_frac(a) - 0.5, _frac(b) - 0.5) < 0.35,                         # dots
    None,                                                                                 # noise
    lambda a, b: _frac(a) + _frac(b) < 1.0,                                               # triangles
    lambda a, b: _frac(b + np.abs(_frac(a) - 0.5)) < 0.5,                                 # zigzags
    lambda a, b: (_frac(a) < 0.35) & (_frac(0.5 * b + 0.5 * np.floor(a)) < 0.5),          # rain
    _pluses,
)


def _apply(rules: tuple, kinds: np.ndarray, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``rules[kinds[i]](u[i], v[i])`` for every image i, evaluating each rule only on the images that use it."""
    out = np.zeros(u.shape, dtype=bool)
    for kind, rule in enumerate(rules):
        rows = np.flatnonzero(kinds == kind)
        if len(rows):
            out[rows] = rng.random(u[rows].shape) < 0.5 if rule is None else rule(u[rows], v[rows])
    return out


def render(shapes: np.ndarray, textures: np.ndarray, colours: np.ndarray, size: int,
           rng: np.random.Generator) -> np.ndarray:
    """``(N, 3, size, size)`` float32 images in [0, 1]: each shape rotated, scaled and placed at random."""
    n = len(shapes)
    # pixel centres in [-1, 1]; float32 halves the work
    grid = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    u, v = grid[None, None, :], -grid[None, :, None]  # v points up

    def column(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32)[:, None, None]

    angle = column(np.deg2rad(rng.uniform(-45, 45, n)))
    scale = column(rng.uniform(0.55, 0.75, n))
    cx, cy = (column(rng.uniform(-1, 1, n)) * (1 - scale) * 0.9 for _ in range(2))
    du, dv = u - cx, v - cy
    x = (np.cos(angle) * du + np.sin(angle) * dv) / scale
    y = (-np.sin(angle) * du + np.cos(angle) * dv) / scale
    mask = _apply(SHAPE_RULES, shapes, x, y, rng)

    period = 2 * 5.0 / 32  # five pixels at 32 px, scaled with the image
    tex_angle = column(np.deg2rad(rng.uniform(-45, 45, n)))
    a = (np.cos(tex_angle) * u + np.sin(tex_angle) * v) / period + column(rng.random(n))
    b = (-np.sin(tex_angle) * u + np.cos(tex_angle) * v) / period + column(rng.random(n))
    ink = (mask & _apply(TEXTURE_RULES, textures, a, b, rng)).astype(np.float32)[:, None]  # (N, 1, S, S)
    rgb = np.asarray(list(COLOURS.values()), dtype=np.float32)[colours][:, :, None, None]  # (N, 3, 1, 1)
    return ink * rgb + (1 - ink) * BACKGROUND


class TrifeaturesTask:
    """Two rendered images (shape, texture, colour) and a caption: shared shape, pairwise colour/texture, and a
    synergistic code word fixed by image1's texture and image2's colour together; label: the shape.

    Args:
        n_train: training instances (the validation split is carved from them).
        n_test: test instances, each with a caption attribute combination unseen in training.
        size: side of the rendered images in pixels, 16 to 128.
        val_size: share of the training instances held out for validation.
        seed: fixes the data and the split.
    """

    def __init__(
        self, n_train: int = 2400, n_test: int = 500, size: int = 32, val_size: float = DEFAULT_VAL_SIZE, seed: int = 0
    ) -> None:
        combos = N_ATTRIBUTE**4
        if n_train < 4 or not 10 <= n_test <= combos // 2:
            raise ValueError(f"n_train must be >= 4 and n_test between 10 and {combos // 2}, "
                             f"got {n_train} and {n_test}")
        if not 16 <= size <= 128:
            raise ValueError(f"size must be between 16 and 128 pixels, got {size}")
        check_val_size(val_size)
        self.n_train, self.n_test, self.size, self.seed = n_train, n_test, size, seed
        self.n_val = max(2, int(np.ceil(val_size * n_train)))
        self.val_size = val_size

    def card(self) -> DataCard:
        """The data card: rendered here from the seed (MIT, as pmrl-bench). The caption's token length depends on
        the templates drawn, so the shape comes from the data (rendering takes about a second)."""
        return DataCard(
            name="pmrl-bench Trifeatures (trimodal)",
            description="two rendered images of one shape with their own texture and colour, and a caption naming "
                        "the shape, image1's colour, image2's texture and a code word fixed by image1's texture and "
                        "image2's colour together; label: the shape",
            source="rendered by pmrl-bench (pmrl_bench/builtins/tasks/trifeatures.py) from the task's parameters and "
                   "seed; no file is read",
            licence="MIT (generated by pmrl-bench, under its licence)",
            citation=f"pmrl-bench developers, pmrl-bench {__version__}, task 'trifeatures'; after Trifeatures "
                     "(Hermann & Lampinen, NeurIPS 2020) and its bimodal version in CoMM (Dufumier et al.)",
        ).with_data(self.load())

    def attributes(self, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], ...]:
        """Train, validation and test attribute arrays. Validation and test caption attributes (s, c1, t2, code)
        are distinct and unseen in training (validation is carved from the ``n_train`` instances)."""
        order = rng.permutation(N_ATTRIBUTE**4)
        test_combos = order[: self.n_test]
        val_combos = order[self.n_test : self.n_test + self.n_val]
        train_combos = rng.choice(order[self.n_test + self.n_val :], size=self.n_train - self.n_val, replace=True)

        def expand(combos: np.ndarray) -> dict[str, np.ndarray]:
            s, c1, t2, code = (combos // N_ATTRIBUTE**k % N_ATTRIBUTE for k in range(4))
            t1 = rng.integers(0, N_ATTRIBUTE, len(combos))
            c2 = (code - t1) % N_ATTRIBUTE  # so that code = (t1 + c2) mod 10
            template = rng.integers(0, len(TEMPLATES), len(combos))
            return {"s": s, "t1": t1, "c1": c1, "t2": t2, "c2": c2, "code": code, "template": template}

        return expand(train_combos), expand(val_combos), expand(test_combos)

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        train_attrs, val_attrs, test_attrs = self.attributes(rng)
        colour_names = list(COLOURS)

        def captions(at: dict[str, np.ndarray]) -> list[str]:
            return [
                TEMPLATES[at["template"][i]].format(
                    s=SHAPES[at["s"][i]], c1=colour_names[at["c1"][i]], t2=TEXTURES[at["t2"][i]],
                    code=CODES[at["code"][i]]
                )
                for i in range(len(at["s"]))
            ]

        train_text, val_text, test_text = captions(train_attrs), captions(val_attrs), captions(test_attrs)
        tokenizer = WordTokenizer.fit(train_text)  # every attribute and template word occurs in training
        length = max(len(words(t)) for t in train_text + val_text + test_text)

        def split(at: dict[str, np.ndarray], text: list[str]) -> Split:
            return Split(
                {
                    "image1": render(at["s"], at["t1"], at["c1"], self.size, rng),
                    "image2": render(at["s"], at["t2"], at["c2"], self.size, rng),
                    "caption": tokenizer.encode(text, length),
                },
                at["s"].astype(np.int64),
            )

        image_shape = (3, self.size, self.size)
        modalities = [
            Modality("image1", IMAGE, image_shape),
            Modality("image2", IMAGE, image_shape),
            Modality("caption", TEXT, (length,), info=tokenizer.info()),
        ]
        return TaskData(
            modalities, split(train_attrs, train_text), split(test_attrs, test_text), num_classes=len(SHAPES),
            validation=split(val_attrs, val_text),
        )
