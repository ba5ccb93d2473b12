"""The facility-location loss against a direct, loop-based transcription of TensorFlow 1's
``cluster_loss`` (one scikit-learn call per candidate, as the reference's ``py_func``)."""

import numpy as np
import pytest
import torch
from sklearn import metrics

from dscl.objectives import facility, make_objective
from dscl.objectives.facility import (
    PAM_SWEEPS,
    clustering_scores,
    euclidean_distances,
    facility_location_loss,
    facility_medoids,
)

SKLEARN = {
    "nmi": metrics.normalized_mutual_info_score,
    "ami": lambda a, b: max(0.0, metrics.adjusted_mutual_info_score(a, b)),
    "ari": lambda a, b: max(0.0, metrics.adjusted_rand_score(a, b)),
    "vmeasure": lambda a, b: max(0.0, metrics.v_measure_score(a, b)),
}


def ref_assign(d, chosen):
    """get_cluster_assignment: argmin over the chosen rows, then each medoid its own."""
    p = [int(np.argmin([d[c, j] for c in chosen])) for j in range(d.shape[0])]
    for i, c in enumerate(chosen):
        p[c] = i
    return np.array(p)


def ref_energy(d, chosen):
    return -sum(min(d[c, j] for c in chosen) for j in range(d.shape[0]))


def ref_medoids(d, y, mm, pam, margin_type):
    score = SKLEARN[margin_type]
    n, k = d.shape[0], len(np.unique(y))
    chosen = []
    for _ in range(k):  # compute_augmented_facility_locations
        cands = [i for i in range(n) if i not in chosen]
        totals = [
            ref_energy(d, [*chosen, c]) + mm * (1 - score(y, ref_assign(d, [*chosen, c]))) for c in cands
        ]
        chosen.append(cands[int(np.argmax(totals))])
    if pam:  # compute_augmented_facility_locations_pam
        for _ in range(PAM_SWEEPS):
            pred = ref_assign(d, chosen)
            for idx in range(k):  # update_all_medoids
                members = [j for j in range(n) if pred[j] == idx]
                totals = []
                for c in members:
                    tmp = list(chosen)
                    tmp[idx] = c
                    fac = -sum(d[c, j] for j in members)
                    totals.append(fac + mm * (1 - score(y, ref_assign(d, tmp))))
                chosen[idx] = members[int(np.argmax(totals))]
    return chosen


def ref_loss(emb, labels, mm, pam=True, margin_type="nmi"):
    """cluster_loss, the distances differentiable in ``emb`` (a float64 tensor)."""
    d = euclidean_distances(emb)
    dn = d.detach().numpy()
    y = labels.numpy()
    chosen = ref_medoids(dn, y, mm, pam, margin_type)
    pred = ref_assign(dn, chosen)
    score_pred = -d[chosen].amin(0).sum()
    score_gt = 0.0
    for c in np.unique(y):  # compute_gt_cluster_score
        ids = np.flatnonzero(y == c)
        score_gt = score_gt - d[ids][:, ids].sum(0).amin()
    loss = torch.clamp(score_pred + mm * (1 - SKLEARN[margin_type](y, pred)) - score_gt, min=0.0)
    return loss, chosen


def batch(n=24, d=5, k=4, seed=0, normalize=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
    y = torch.arange(n) % k
    return x, y[torch.randperm(n, generator=g)]


@pytest.mark.parametrize("margin_type", ["nmi", "ari", "vmeasure", "ami"])
@pytest.mark.parametrize("pam", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_medoids_and_gradient_equal_the_reference(margin_type, pam, seed):
    x, y = batch(seed=seed, n=18 if margin_type == "ami" else 24)
    mm = 2.0 if seed else 0.5
    xr = x.clone().requires_grad_(True)
    expected, chosen = ref_loss(xr, y, mm, pam, margin_type)
    (g_ref,) = torch.autograd.grad(expected, xr)
    sol = facility_medoids(euclidean_distances(x), y, mm, pam, margin_type)
    assert sol.medoids.tolist() == chosen
    xv = x.clone().requires_grad_(True)
    loss = facility_location_loss(xv, y, mm, pam, margin_type)
    (g,) = torch.autograd.grad(loss, xv)
    assert float(expected.detach()) > 0  # a batch where the hinge is active, so the gradient is tested
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(g, g_ref)


def test_clustering_scores_equal_scikit_learn_on_random_partitions():
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, 5, 60))
    parts = [rng.integers(0, m, 60) for m in (1, 2, 5, 9) for _ in range(3)]
    parts += [y.numpy().copy(), np.zeros(60, dtype=np.int64)]
    for margin_type, fn in SKLEARN.items():
        for p in parts:
            m = int(p.max()) + 1
            got = clustering_scores(y, torch.from_numpy(p)[None], m, margin_type)
            assert float(got[0]) == pytest.approx(fn(y.numpy(), p), abs=1e-12), (margin_type, p)
    same = clustering_scores(y, (4 - y)[None], 5, "const")  # renamed: the same partition
    assert float(same[0]) == 1.0
    assert float(clustering_scores(y, torch.from_numpy(parts[0])[None], 1, "const")[0]) == 0.0


class _BruteNearestTwo:
    """PAM's nearest other medoid as first written: an argmin over every medoid per step."""

    def __init__(self, rows):
        self.rows = rows.clone()

    def other_than(self, idx):
        others = self.rows.clone()
        others[idx] = float("inf")
        nearest = others.argmin(0)
        return nearest, others.gather(0, nearest[None]).squeeze(0)

    def replace(self, idx, row):
        self.rows[idx] = row


def test_the_two_nearest_medoids_follow_every_replacement():
    """PAM's record of each point's two nearest medoids, after each of 300 replacements
    (distances drawn from a few values, so that they tie), names the same nearest other
    medoid, at the same distance, as an argmin over all medoids."""
    g = torch.Generator().manual_seed(0)
    k, n = 9, 50
    rows = torch.randint(0, 4, (k, n), generator=g).double()
    kept, brute = facility._NearestTwo(rows), _BruteNearestTwo(rows)
    for _ in range(300):
        idx = int(torch.randint(0, k, (1,), generator=g))
        row = torch.randint(0, 4, (n,), generator=g).double()
        kept.replace(idx, row)
        brute.replace(idx, row)
        for other in range(k):
            got, want = kept.other_than(other), brute.other_than(other)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("ties", [False, True])
def test_many_classes_of_two_or_three_give_the_same_medoids(ties, monkeypatch):
    """SOP's batches: many classes of two or three images. PAM keeps each point's two
    nearest medoids up to date instead of an argmin over all medoids per step: the same
    medoids, also where distances tie (points on a grid: the first position wins)."""
    g = torch.Generator().manual_seed(3)
    n, k = 60, 25
    x = torch.randint(0, 3, (n, 4), generator=g).double() if ties else batch(n=n, k=k, seed=3)[0]
    y = torch.arange(n) % k
    d = euclidean_distances(x)
    for margin_type in ("nmi", "ari", "vmeasure"):
        got = facility_medoids(d, y, 1.0, True, margin_type)
        with monkeypatch.context() as patch:
            patch.setattr(facility, "_NearestTwo", _BruteNearestTwo)
            want = facility_medoids(d, y, 1.0, True, margin_type)
        assert torch.equal(got.medoids, want.medoids) and got.score == want.score


@pytest.mark.parametrize("margin_type", ["nmi", "ari", "vmeasure", "const"])
def test_the_large_batch_counts_give_the_same_bits(margin_type, monkeypatch):
    """The greedy step's counts from what moves, and the sorted cell sizes used where the
    contingency tables would be large, score every candidate with the same bits as the
    partitions' own tables (SOP's batch: hundreds of classes; the digits and testbed
    figures stay byte-identical)."""
    rng = np.random.default_rng(1)
    n = 80
    y = torch.from_numpy(rng.integers(0, 7, n))
    y[:7] = torch.arange(7)
    for assign in (torch.from_numpy(rng.integers(0, 6, n)), y):  # any partition; the classes'
        m = int(assign.max()) + 1
        move = torch.from_numpy(rng.random((40, n)) < 0.3)
        move[0], move[1] = True, False  # every point to the new cluster; none
        clusters = torch.where(move, m, assign)
        want = clustering_scores(y, clusters, m + 1, margin_type)
        got = facility._scores(y, *facility._greedy_counts(y, assign, move, m), margin_type)
        assert torch.equal(got, want)
        with monkeypatch.context() as patch:
            patch.setattr(facility, "TABLE_PER_POINT", 0)
            assert torch.equal(clustering_scores(y, clusters, m + 1, margin_type), want)


def test_single_cluster_and_single_class_edge_cases_match_scikit_learn():
    one = torch.zeros(10, dtype=torch.long)
    two = torch.arange(10) % 2
    assert float(clustering_scores(one, one[None], 1)[0]) == 1.0  # both a single cluster
    assert float(clustering_scores(two, one[None], 1)[0]) == metrics.normalized_mutual_info_score(two, one)
    assert float(clustering_scores(one, two[None], 2)[0]) == metrics.normalized_mutual_info_score(one, two)


def test_invariant_to_batch_permutation_and_label_renaming():
    x, y = batch(seed=3)
    loss = facility_location_loss(x, y, 1.0, True, "nmi")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(facility_location_loss(x[perm], y[perm], 1.0, True, "nmi"), loss)
    torch.testing.assert_close(facility_location_loss(x, 100 + 7 * (3 - y), 1.0, True, "nmi"), loss)


def test_gradcheck_where_the_medoids_are_fixed():
    x, y = batch(n=12, d=3, k=3, seed=4)
    sol = facility_medoids(euclidean_distances(x), y, 1.0)

    def fixed(emb):  # the loss with the medoid search held at sol
        d = euclidean_distances(emb)
        member = torch.nn.functional.one_hot(y).to(d.dtype)
        gt = (d @ member).masked_fill(member == 0, float("inf")).amin(0).sum()
        return -d[sol.medoids].amin(0).sum() + (1 - sol.score) + gt

    assert torch.autograd.gradcheck(fixed, (x.clone().requires_grad_(True),))
    xv = x.clone().requires_grad_(True)
    torch.testing.assert_close(facility_location_loss(xv, y, 1.0, True, "nmi"), torch.clamp(fixed(x), min=0))


def test_a_single_class_batch_has_zero_loss_and_gradient():
    x = torch.randn(8, 4, dtype=torch.float64).requires_grad_(True)
    loss = facility_location_loss(x, torch.full((8,), 3), 1.0, True, "nmi")
    (g,) = torch.autograd.grad(loss, x)
    assert float(loss) == 0.0
    assert torch.count_nonzero(g) == 0


def test_the_objective_normalises_and_refuses_bad_settings():
    x, y = batch(normalize=False)
    objective = make_objective("facility", {"margin_multiplier": 1.0})
    assert objective.normalized
    torch.testing.assert_close(
        objective(x, y), facility_location_loss(torch.nn.functional.normalize(x), y, 1.0, True, "nmi")
    )
    _, grad = objective.loss_and_gradient(x.float(), y)
    assert grad.shape == x.shape and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="margin_type"):
        make_objective("facility", {"margin_type": "purity"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[.margin.\] in facility"):
        make_objective("facility", {"margin": 1.0})
