"""Active choice of the architectures to label for a new task (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from archgen import ArchGen
from archgen.errors import RequestError
from predictors.calibration import informative_points, prior_covariance


def _synthetic(seed: int = 0):
    rng = np.random.default_rng(seed)
    known = rng.normal(size=(1, 4, 6))  # 1 member, 4 known targets, 6 features
    phi = rng.normal(size=(1, 50, 6))
    return known, phi


def test_first_choice_is_where_the_prior_is_least_sure():
    known, phi = _synthetic()
    cov = prior_covariance(known[0])
    variance = np.einsum("np,pq,nq->n", phi[0], cov, phi[0])
    assert informative_points(known, phi, 1) == [int(np.argmax(variance))]


def test_choices_are_distinct_and_a_duplicate_loses_its_value():
    known, phi = _synthetic()
    cov = prior_covariance(known[0])
    best = int(np.argmax(np.einsum("np,pq,nq->n", phi[0], cov, phi[0])))
    phi = np.concatenate([phi, phi[:, best:best + 1]], axis=1)  # the most informative point, twice
    chosen = informative_points(known, phi, 10)
    assert len(set(chosen)) == 10
    assert not {best, phi.shape[1] - 1} <= set(chosen[:5])  # its copy tells little once it is measured


def test_choice_is_deterministic_and_checked():
    known, phi = _synthetic()
    assert informative_points(known, phi, 5) == informative_points(known, phi, 5)
    with pytest.raises(ValueError, match="k must be from 1 to the 50 candidate points"):
        informative_points(known, phi, 51)


def test_choose_task_archs_in_an_enumerable_space_then_calibrate():
    ag = ArchGen.pretrained("nb201", restore=False)
    chosen = ag.choose_task_archs(12)
    assert len(set(chosen)) == 12 and all(ag.space.parse(a) == a for a in chosen)
    assert ag.choose_task_archs(12, seed=5) == chosen  # the whole space is searched: seed does not matter
    from archgen.data import load_table

    table = load_table("nb201")
    cal = ag.calibrate_task("active", chosen, table.accuracy("cifar100")[table.rows(chosen)], persist=False)
    assert cal.k == 12 and np.isfinite(cal.fit_spearman)


def test_choose_task_archs_in_a_large_space_draws_a_seeded_pool():
    ag = ArchGen.pretrained("anb", restore=False)
    a, b = ag.choose_task_archs(5, pool=200, seed=0), ag.choose_task_archs(5, pool=200, seed=1)
    assert len(set(a)) == 5 and a == ag.choose_task_archs(5, pool=200, seed=0) and a != b
    for kwargs, message in (({"k": 0}, "k must be from 1"), ({"k": 5, "pool": 3}, r"k \(5\) must be at most the 3"),
                            ({"k": 5, "seed": -1}, "seed must be an int")):
        with pytest.raises(RequestError, match=message):
            ag.choose_task_archs(**kwargs)
