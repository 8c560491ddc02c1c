"""The study's statistics: each rule pinned on synthetic data with known answers."""

import itertools
import math

import numpy as np
import pytest

from elrt_core.study import stats


def test_t_interval_matches_the_textbook_formula():
    low, high = stats.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert all(math.isnan(x) for x in stats.t_interval([1.0]))


def test_ratio_interval_is_the_t_interval_of_log_ratios_mapped_back():
    dense, low = [2.0, 4.0, 8.0], [1.0, 1.0, 1.0]  # log ratios log 2, log 4, log 8: mean log 4, sd log 2
    ratio, lo, hi = stats.ratio_interval(dense, low)
    half = 4.302652729911275 * math.log(2) / math.sqrt(3)
    assert (ratio, lo, hi) == pytest.approx((4.0, 4 * math.exp(-half), 4 * math.exp(half)))
    ratio, lo, hi = stats.ratio_interval([3.0], [2.0])  # one pair: a ratio, no interval
    assert ratio == pytest.approx(1.5) and math.isnan(lo) and math.isnan(hi)
    for bad in (([1.0, 2.0], [1.0]), ([], []), ([1.0, 0.0], [1.0, 1.0])):
        with pytest.raises(ValueError, match="positive times"):
            stats.ratio_interval(*bad)


def test_sign_flip_p_is_exact():
    assert stats.sign_flip_p([1.0] * 5) == pytest.approx(2 / 32)  # only all-plus and all-minus are as extreme
    assert stats.sign_flip_p([1.0, -1.0]) == 1.0
    d = [0.3, -0.1, 0.8, 0.5]
    brute = np.mean(
        [abs(np.mean(np.array(s) * np.abs(d))) >= abs(np.mean(d)) - 1e-12 for s in itertools.product((1, -1), repeat=4)]
    )
    assert stats.sign_flip_p(d) == pytest.approx(brute)
    assert stats.sign_flip_p([1.0] * 18) == 2 / 2**18  # exact in blocks of 2^16: the 18 layers of a ResNet-20
    rng = np.random.default_rng(1)
    d17 = rng.normal(0.3, 1.0, 17)
    brute17 = np.mean(np.abs(np.array(list(itertools.product((1, -1), repeat=17))) @ np.abs(d17)) >= abs(d17.sum()) - 1e-9)
    assert stats.sign_flip_p(d17) == pytest.approx(brute17)
    assert 0 < stats.sign_flip_p([1.0] * 21) < 1e-3  # Monte Carlo branch: tiny but never 0


def test_least_p_and_effect_text_say_when_the_test_is_at_its_floor():
    assert stats.least_p(5) == pytest.approx(0.0625) and stats.least_p(0) == 1.0
    at_floor = stats.paired(dict.fromkeys(range(5), 0.0), {s: 1.0 + 0.1 * s for s in range(5)})
    assert at_floor.effect().endswith("sign-flip p = 0.062, its floor at n = 5)")
    mixed = stats.paired(dict.fromkeys(range(5), 0.0), {0: 1.0, 1: 1.2, 2: -0.1, 3: 0.9, 4: 1.1})
    assert "floor" not in mixed.effect() and mixed.p_value > stats.least_p(5)


def test_an_interval_end_near_zero_keeps_the_decimals_that_give_its_sign():
    common = dict(reference="a", treatment="b", seeds=tuple(range(5)), diffs=(0.5,) * 5, mean=0.58, p_value=0.0625)
    near = stats.Paired(**common, low=-0.0003, high=1.16, confidence=0.988, verdict="inconclusive")
    assert "CI -0.0003 to +1.16" in near.effect()  # "-0.00" would hide which side of 0 it is on
    clear = stats.Paired(**common, low=0.214, high=0.951, confidence=0.95, verdict="supported")
    assert "CI +0.21 to +0.95" in clear.effect()


@pytest.mark.parametrize(
    "low,high,direction,word",
    [
        (0.2, 1.0, 1, "supported"),
        (-1.0, -0.2, 1, "contradicted"),
        (-0.2, 1.0, 1, "inconclusive"),
        (-1.0, -0.2, -1, "supported"),
        (0.0, 1.0, 1, "inconclusive"),
        (math.nan, math.nan, 1, "inconclusive"),
    ],
)
def test_verdict_words_come_from_the_interval(low, high, direction, word):
    assert stats.verdict(low, high, direction) == word


def test_paired_uses_common_seeds_and_says_n():
    ref = {0: 80.0, 1: 81.0, 2: 79.0, 3: 80.5}
    trt = {0: 82.0, 1: 82.5, 2: 81.5, 7: 99.0}
    c = stats.paired(ref, trt, names=("none", "SO"))
    assert c.seeds == (0, 1, 2) and c.n == 3 and c.diffs == pytest.approx((2.0, 1.5, 2.5))
    assert c.mean == pytest.approx(2.0) and c.verdict == "supported" and c.low > 0
    assert "n = 3" in c.effect() and "+2.00 points" in c.effect()
    one = stats.paired({0: 1.0}, {0: 2.0})
    assert one.verdict == "inconclusive" and "no interval" in one.effect()


def test_noise_is_inconclusive_and_a_consistent_loss_is_contradicted():
    rng = np.random.default_rng(0)
    ref = {s: 80 + rng.normal() for s in range(5)}
    noisy = {s: ref[s] + rng.normal(0, 1.0) for s in range(5)}
    assert stats.paired(ref, {s: v + 0.0 for s, v in noisy.items()}).verdict in ("inconclusive",)
    worse = {s: ref[s] - 1.0 - 0.01 * s for s in range(5)}
    assert stats.paired(ref, worse).verdict == "contradicted"


def test_against_reference_corrects_for_the_number_of_comparisons():
    values = {
        "none": {0: 1.0, 1: 2.0, 2: 3.0},
        "a": {0: 2.0, 1: 2.5, 2: 4.5},
        "b": {0: 1.0, 1: 2.0, 2: 3.1},
        "c": {0: 0.0, 1: 2.0, 2: 3.0},
    }
    out = stats.against_reference(values, "none")
    assert [c.treatment for c in out] == ["a", "b", "c"]
    assert all(c.confidence == pytest.approx(1 - 0.05 / 3) for c in out)
    single = stats.paired(values["none"], values["a"])
    assert out[0].high - out[0].low > single.high - single.low  # wider than the uncorrected interval
    planned = stats.against_reference(values, "none", family=5)  # two planned methods have no values yet
    assert all(c.confidence == pytest.approx(1 - 0.05 / 5) for c in planned)
    assert planned[0].high - planned[0].low > out[0].high - out[0].low
    with pytest.raises(ValueError, match="family of 2"):
        stats.against_reference(values, "none", family=2)
    assert stats.bonferroni(0) == stats.bonferroni(1) == stats.CONFIDENCE


def test_omnibus_exact_and_sampled():
    same = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 1.0, 1: 2.0, 2: 3.0}}
    assert stats.omnibus(same)[0] == 1.0
    shifted = {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 2.0, 1: 3.0, 2: 4.0}}
    p, n = stats.omnibus(shifted)  # (2!)^3 = 8 relabelings, 2 as extreme as observed
    assert n == 3 and p == pytest.approx(2 / 8)
    rng = np.random.default_rng(1)
    big = {m: {s: 80 + 3 * i + rng.normal(0, 0.1) for s in range(6)} for i, m in enumerate("abcd")}
    assert stats.omnibus(big)[0] < 0.01


def test_leader_only_outside_the_noise():
    clear = {
        "a": {s: 80.0 + 0.1 * s for s in range(5)},
        "b": {s: 82.0 + 0.1 * s + 0.01 * (s % 2) for s in range(5)},
        "c": {s: 79.0 + 0.1 * s for s in range(5)},
    }
    assert stats.leader(clear) == "b"
    rng = np.random.default_rng(2)
    noise = {m: {s: 80 + rng.normal() for s in range(5)} for m in "abc"}
    assert stats.leader(noise) is None


def test_equal_differences_have_no_interval_and_decide_nothing():
    c = stats.paired({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5})  # +0.5 twice: sd 0, a t interval of no width
    assert c.verdict == "inconclusive" and math.isnan(c.low)
    assert c.effect() == "+0.50 points (n = 2, every difference equal: no interval, sign-flip p = 0.5)"


@pytest.mark.parametrize("bad", [[math.nan, 1.0], [math.inf, 1.0, 2.0]])
def test_non_finite_differences_are_an_error_not_a_p_value(bad):
    with pytest.raises(ValueError, match="finite"):
        stats.sign_flip_p(bad)
    with pytest.raises(ValueError, match="finite"):
        stats.t_interval(bad)


def test_omnibus_without_two_common_seeds_is_no_test():
    one_seed = {"a": {0: 80.0}, "b": {0: 83.0}}
    p, n = stats.omnibus(one_seed)
    assert math.isnan(p) and n == 1


def test_leader_waits_for_every_planned_method_and_corrects_for_all_of_them():
    clear = {
        m: {s: base + 0.1 * s + 0.01 * (s % 2) * i for s in range(5)} for i, (m, base) in enumerate([("a", 80.0), ("b", 82.0)])
    }
    assert stats.leader(clear) == "b"
    assert stats.leader(clear, planned=["a", "b", "c"]) is None  # c has no runs yet: it could lead
    near = {"a": {s: 80.0 + 0.3 * (s % 2) for s in range(3)}, "b": {s: 80.5 + 0.05 * s for s in range(3)}}
    alone = stats.leader(near)
    near["c"] = {s: 70.0 + s for s in range(3)}
    # with three planned methods each pair gets a wider (Bonferroni) interval than with two
    assert alone == "b" and stats.leader(near, planned=["a", "b", "c"]) is None
    assert stats.leader(near, planned=["a", "b"]) is None  # c is compared too, planned or not: three methods' pairs


def test_mean_sd_n():
    assert stats.mean_sd_n([80.0, 82.0]) == "81.00 ± 1.41 (2)"
    assert stats.mean_sd_n([80.0]) == "80.00 (1)"
    assert stats.mean_sd_n([]) == "—"


@pytest.mark.parametrize(
    ("low", "high", "smallest", "word"),
    [
        (-0.2, 0.3, 0.5, "no meaningful effect"),
        (-0.2, 0.6, 0.5, "inconclusive"),  # reaches past the smallest effect of interest: too wide to tell
        (0.1, 0.3, 0.5, "supported"),  # excludes zero: the direction is decided, however small
        (-0.2, 0.3, None, "inconclusive"),  # no smallest effect declared: no null can be stated
    ],
)
def test_no_meaningful_effect_is_an_interval_inside_the_smallest_effect(low, high, smallest, word):
    assert stats.verdict(low, high, 1, smallest) == word


def test_holm_steps_down_and_stops_at_the_first_non_rejection():
    # p-values out of order; family of 4 (one planned comparison has no values yet)
    levels = stats.holm_levels([0.02, 0.001, 0.3, 0.012], family=5)
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 5, 1 - 0.05 / 3, 1 - 0.05 / 4])
    # 0.001 < 0.05/5 and 0.012 < 0.05/4 reject; 0.02 is not below 0.05/3: the procedure stops, and 0.3 keeps that level
    stop = stats.holm_levels([0.001, 0.3, 0.5], family=3)
    assert stop == pytest.approx([1 - 0.05 / 3, 0.975, 0.975])  # every later one keeps the level where it stopped
    assert stats.holm_levels([0.04, 0.04]) == pytest.approx([0.975, 0.975])  # Bonferroni would give the same here
    assert stats.holm_levels([0.01, 0.04]) == pytest.approx([0.975, 0.95])  # Holm rejects both, Bonferroni one
    with pytest.raises(ValueError, match="family of 1"):
        stats.holm_levels([0.1, 0.2], family=1)


def test_holm_decisions_equal_the_t_test_at_the_holm_level():
    ref = {s: 80.0 + s for s in range(4)}
    pairs = [
        (ref, {s: v + 1.0 + 0.1 * (-1) ** s for s, v in ref.items()}, ("none", "a")),
        (ref, {s: v + 0.3 + 0.2 * (-1) ** s for s, v in ref.items()}, ("none", "b")),
    ]
    out = stats.holm(pairs)
    assert out[0].adjustment == "Holm" and out[0].confidence == pytest.approx(0.975)
    for c in out:
        rejected = c.verdict in ("supported", "contradicted")
        assert rejected == (c.t_p < 1 - c.confidence)
    assert "Holm 97.5% CI" in out[0].effect()
    assert stats.holm(pairs[:1])[0].adjustment == ""  # a family of one is a plain interval


def test_minimum_detectable_effect_follows_the_t_power_formula():
    from scipy import stats as sp

    sd, n = 0.4, 3
    expected = (sp.t.ppf(0.975, 2) + sp.t.ppf(0.8, 2)) * sd / n**0.5
    assert stats.minimum_detectable(sd, n) == pytest.approx(expected)
    assert stats.minimum_detectable(sd, 10) < stats.minimum_detectable(sd, 3)  # more seeds detect less
    assert stats.minimum_detectable(sd, 1) != stats.minimum_detectable(sd, 1)  # NaN: no spread from one pair
    c = stats.paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 2.2, 2: 3.9})
    assert c.detectable == pytest.approx(stats.minimum_detectable(float(np.std(c.diffs, ddof=1)), 3))
    assert c.detectable_text().startswith("detectable at n = 3 (80% power): ")
