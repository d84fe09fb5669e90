"""Classification probes on frozen embeddings: a linear probe and k-NN, per modality and fused.

Two backends compute the same two probes:

* ``torch`` (the default) fits them where the embeddings already are (CPU or GPU): a multinomial logistic
  regression by full-batch L-BFGS and a chunked cosine k-NN. The embeddings are not copied to the host (only the
  probe's K × (d+1) parameters are, once per L-BFGS evaluation), and there is no scikit-learn overhead.
* ``sklearn`` is the reference: ``StandardScaler`` + ``LogisticRegression`` and ``KNeighborsClassifier``.

The models are the same: the linear probe standardises every feature with the train split's mean and standard
deviation (a constant feature is left unscaled) and minimises the mean cross-entropy plus ``||W||² / (2 C n)`` with
``C = 1`` and an unpenalised intercept, which is scikit-learn's objective for ``C=1`` scaled by ``1/n``; the k-NN
takes the ``k`` nearest train rows by cosine distance and weighs each vote by ``1 / distance`` (train rows at
distance 0 take the whole vote, split evenly). A probe whose train split holds a single class predicts that class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

KNN_NEIGHBOURS = 10
PROBE_C = 1.0  # inverse L2 strength, scikit-learn's default
PROBE_BACKENDS = ("torch", "sklearn")
# L-BFGS stops when the largest gradient entry of the (mean) loss, in the fit's preconditioned coordinates, is below
# this, or after LBFGS_MAX_ITER iterations (scikit-learn's lbfgs: ``gtol=tol=1e-4`` on the raw weights,
# ``max_iter=1000``).
LBFGS_TOLERANCE = 1e-3
LBFGS_MAX_ITER = 1000
# The k-NN scores QUERY_CHUNK test rows against TRAIN_CHUNK train rows at a time (64 MiB of float32 per block)
# and keeps a running top k, so memory stays bounded whatever the sizes of the splits.
QUERY_CHUNK = 2048
TRAIN_CHUNK = 8192


def fuse(embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The fused embedding: the normalised mean of the modalities' unit embeddings."""
    return torch.nn.functional.normalize(torch.stack(list(embeddings.values())).mean(0), dim=-1)


# -- scikit-learn: the reference -----------------------------------------------------------------------------------

def linear_probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0
) -> float:
    """Test accuracy of a logistic-regression probe on standardised features (scikit-learn)."""
    # Imported here: scikit-learn (with scipy and pandas) takes seconds to import, and only this backend needs it.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(train_y)
    if len(classes) < 2:  # scikit-learn refuses to fit one class; the only sensible prediction is that class
        return float(np.mean(np.asarray(test_y) == classes[0])) if len(classes) else 0.0
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=LBFGS_MAX_ITER, random_state=seed))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = KNN_NEIGHBOURS
) -> float:
    """Test accuracy of a distance-weighted k-NN vote under cosine distance (scikit-learn)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", weights="distance")
    knn.fit(train_x, train_y)
    return float(knn.score(test_x, test_y))


# -- torch: on the embeddings' device ------------------------------------------------------------------------------

def _class_indices(train_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes, index)``: the sorted distinct train labels and each train row's position among them."""
    classes, index = torch.unique(train_y, sorted=True, return_inverse=True)
    return classes, index


def standardise(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both splits scaled by the train split's per-feature mean and standard deviation (StandardScaler's rule:
    population std; a feature whose std is zero up to rounding keeps scale 1, so it becomes 0, not NaN)."""
    mean = train_x.mean(0)
    std = train_x.std(0, correction=0)
    constant = std <= 10 * torch.finfo(train_x.dtype).eps * mean.abs().clamp_min(1.0)
    std = torch.where(constant, torch.ones_like(std), std)
    return (train_x - mean) / std, (test_x - mean) / std


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float = PROBE_C,
    tolerance: float = LBFGS_TOLERANCE, max_iter: int = LBFGS_MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight (d, K), bias (K,))`` of a multinomial logistic regression on ``x`` (n, d) with class indices ``y``.

    Minimises ``mean cross-entropy + ||weight||² / (2 c n)``; the bias is not penalised. Full-batch L-BFGS
    (history 10, as scikit-learn's) from zero weights: scipy's L-BFGS-B steers the iterations on the host (the
    parameters are only K × (d+1) numbers) and the loss and its gradient are computed in torch where ``x`` is, in
    its dtype. Deterministic for a given device and thread count. scipy's compiled iteration costs a fraction of
    ``torch.optim.LBFGS``'s Python loop, which took about half of a fit's time at these sizes.

    L-BFGS runs in preconditioned coordinates: with the second moments ``xᵀx / n = U diag(s) Uᵀ`` and
    ``λ = 1 / (c n)``, ``weight = U diag((s + λ)^-½) φ``. The objective and its minimiser are the same; the curvature
    becomes about equal in every direction (data and penalty together), so the fit takes about a third fewer
    iterations than on the standardised features themselves. ``tolerance`` applies to the largest entry of the
    gradient in ``φ``.
    """
    from scipy.optimize import minimize  # scipy.optimize takes a moment to import; only fits need it

    n, d = x.shape
    lam = 1.0 / (c * n)
    moments, axes = torch.linalg.eigh(x.T @ x / n)
    moments = moments.clamp_min(0)  # rounding can make a zero eigenvalue slightly negative
    basis = axes * (moments + lam).rsqrt()
    # One parameter matrix, class-major: row k is (φ_k, b_k), and the inputs carry a row of ones for the bias.
    # (K, d+1) @ (d+1, n) is also several times faster on a CPU than (n, d) @ (d, K) when K is small.
    z_t = torch.cat([(x @ basis).T, x.new_ones(1, n)])
    z = z_t.T.contiguous()
    onehot_t = torch.nn.functional.one_hot(y, num_classes).T.to(x.dtype)
    # ||weight||² λ / 2 = Σ_j φ_j² λ / (2 (s_j + λ)): a diagonal penalty in these coordinates; none on the bias.
    decay = torch.cat([lam / (moments + lam), x.new_zeros(1)]).unsqueeze(0)
    shape = (num_classes, d + 1)

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        # The gradient in closed form, (softmax - onehot) / n: two GEMMs, no autograd graph per evaluation.
        phi = torch.as_tensor(flat).view(shape).to(device=x.device, dtype=x.dtype)
        log_p = (phi @ z_t).log_softmax(0)
        shrink = phi * decay
        loss = -(log_p * onehot_t).sum() / n + 0.5 * (shrink * phi).sum()
        gradient = torch.addmm(shrink, log_p.exp_().sub_(onehot_t), z, alpha=1.0 / n)
        return float(loss), gradient.to("cpu", torch.float64).numpy().ravel()

    # ftol=0: the gradient alone decides when to stop, as scikit-learn's gtol does.
    result = minimize(loss_and_gradient, np.zeros(shape[0] * shape[1]), jac=True, method="L-BFGS-B",
                      options={"maxcor": 10, "gtol": tolerance, "ftol": 0.0, "maxiter": max_iter,
                               "maxfun": max_iter * 5 // 4})
    phi = torch.tensor(result.x, dtype=x.dtype, device=x.device).view(shape)
    return basis @ phi[:, :d].T, phi[:, d].clone()


def torch_linear_probe_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> torch.Tensor:
    """Test accuracy (a 0-d tensor on the embeddings' device) of the logistic-regression probe."""
    classes, index = _class_indices(train_y)
    if len(classes) < 2:
        return (test_y == classes[0]).double().mean() if len(classes) else test_y.new_zeros((), dtype=torch.double)
    train_z, test_z = standardise(train_x.float(), test_x.float())
    weight, bias = fit_logistic_regression(train_z, index, len(classes))
    predicted = classes[(test_z @ weight + bias).argmax(1)]
    return (predicted == test_y).double().mean()


def torch_knn_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, k: int = KNN_NEIGHBOURS,
    query_chunk: int = QUERY_CHUNK, train_chunk: int = TRAIN_CHUNK,
) -> torch.Tensor:
    """Test accuracy (a 0-d tensor) of the distance-weighted cosine k-NN vote, block by block."""
    classes, index = _class_indices(train_y)
    k = min(k, len(train_x))
    train_n = torch.nn.functional.normalize(train_x.float(), dim=-1)
    test_n = torch.nn.functional.normalize(test_x.float(), dim=-1)
    correct = test_y.new_zeros((), dtype=torch.long)
    for q in range(0, len(test_n), query_chunk):
        queries = test_n[q : q + query_chunk]
        best, neighbours = None, None  # the running top k by similarity (the smallest cosine distances)
        for t in range(0, len(train_n), train_chunk):
            scores = queries @ train_n[t : t + train_chunk].T
            block, at = scores.topk(min(k, scores.shape[1]), dim=1)
            at += t
            if best is not None:  # merge at most k + k candidates: cheap, whatever the block size
                block, pick = torch.cat([best, block], 1).topk(min(k, best.shape[1] + block.shape[1]), dim=1)
                at = torch.cat([neighbours, at], 1).gather(1, pick)
            best, neighbours = block, at
        nearest = (1.0 - best).clamp_(0.0, 2.0)  # cosine distance, clipped like scikit-learn's
        exact = nearest == 0
        weights = torch.where(exact.any(1, keepdim=True), exact.double(), 1.0 / nearest.double())
        votes = torch.zeros(len(queries), len(classes), dtype=torch.double, device=queries.device)
        voters = index[neighbours]
        for j in range(voters.shape[1]):  # one neighbour rank at a time: no two adds race (CUDA atomics), so
            votes.scatter_add_(1, voters[:, j : j + 1], weights[:, j : j + 1])  # the sums are deterministic
        correct += (classes[votes.argmax(1)] == test_y[q : q + query_chunk]).sum()
    return correct.double() / max(len(test_n), 1)


def probe_accuracies(
    train: Mapping[str, torch.Tensor], train_y: np.ndarray, test: Mapping[str, torch.Tensor], test_y: np.ndarray,
    seed: int = 0, backend: str = "torch", only: Sequence[str] | None = None,
    kinds: Sequence[str] = ("linear", "knn"),
) -> dict[str, float]:
    """``{"linear:<modality>": acc, "knn:<modality>": acc, ..., "linear:fused": acc, "knn:fused": acc}``.

    ``backend``: ``"torch"`` fits the probes on the embeddings' device, ``"sklearn"`` with scikit-learn (the reference).
    ``only``: the views to probe (e.g. ``("fused",)``); default every modality and the fusion. ``kinds``: which
    probes (``"linear"``, ``"knn"``).
    """
    if backend not in PROBE_BACKENDS:
        raise ValueError(f"probe backend must be one of {', '.join(PROBE_BACKENDS)}, got {backend!r}")
    views = {**train, "fused": fuse(train)}
    test_views = {**test, "fused": fuse(test)}
    if only is not None:
        views = {name: x for name, x in views.items() if name in only}
    if backend == "sklearn":
        out: dict[str, float] = {}
        for name in views:
            train_x, test_x = views[name].cpu().numpy(), test_views[name].cpu().numpy()
            if "linear" in kinds:
                out[f"linear:{name}"] = linear_probe_accuracy(train_x, train_y, test_x, test_y, seed)
            if "knn" in kinds:
                out[f"knn:{name}"] = knn_accuracy(train_x, train_y, test_x, test_y)
        return out
    device = next(iter(views.values())).device
    train_labels = torch.as_tensor(np.asarray(train_y)).to(device)
    test_labels = torch.as_tensor(np.asarray(test_y)).to(device)
    keys, values = [], []
    for name in views:
        if "linear" in kinds:
            keys.append(f"linear:{name}")
            values.append(torch_linear_probe_accuracy(views[name], train_labels, test_views[name], test_labels))
        if "knn" in kinds:
            keys.append(f"knn:{name}")
            values.append(torch_knn_accuracy(views[name], train_labels, test_views[name], test_labels))
    return dict(zip(keys, torch.stack(values).cpu().tolist()))  # one host sync for every probe
