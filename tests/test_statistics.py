"""analytics.statistics against scipy and statsmodels (installed for the tests only), the
textbooks' worked examples, and the undefined cases. No database.

Random inputs reach the edges on purpose: 0 successes, all successes, n = 1, n up to 10⁹ for
proportions and millions for the event counts. Agreement is to 1e-9 relative (1e-10 for the t
quantile), with an absolute tolerance only where a value is near 0."""

from __future__ import annotations

import math
from datetime import timedelta
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from conversations.analytics.statistics import (
    Comparison,
    Interval,
    Moments,
    VolumeComparison,
    benjamini_hochberg,
    compare_means,
    compare_proportions,
    compare_volumes,
    is_significant,
    mean_interval,
    one_sided_p_value,
    round_p_value,
    sample_size_per_arm,
    student_t_quantile,
    student_t_sf,
    volume_one_sided_p_value,
    wilson_interval,
)

RELATIVE = 1e-9
UNDEFINED = Comparison(difference=None, low=None, high=None, p_value=None)


def close(expected: float, *, near_zero: float = 1e-15):
    return pytest.approx(float(expected), rel=RELATIVE, abs=near_zero)


@st.composite
def successes_of_n(draw, max_n: int = 10**9) -> tuple[int, int]:
    n = draw(st.one_of(st.just(1), st.integers(1, 100), st.integers(1, max_n)))
    return draw(st.one_of(st.just(0), st.just(n), st.integers(0, n))), n


# --- Wilson interval ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(successes_of_n())
@example((0, 1))
@example((1, 1))
@example((0, 10**9))
@example((1, 10**9))
@example((10**9, 10**9))
def test_wilson_interval_equals_statsmodels(counts):
    successes, n = counts
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert wilson_interval(successes=successes, n=n) == Interval(
        estimate=successes / n, low=close(low), high=close(high)
    )


def test_wilson_interval_of_newcombes_examples():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics
    # in Medicine 17:857–872: the worked examples, method 3 (Wilson), to 4 decimals.
    examples = {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }
    for (successes, n), bounds in examples.items():
        interval = wilson_interval(successes=successes, n=n)
        assert (round(interval.low, 4), round(interval.high, 4)) == bounds


def test_wilson_interval_is_exact_at_the_ends_and_undefined_without_data():
    assert wilson_interval(successes=0, n=10**9).low == 0.0
    assert wilson_interval(successes=10**9, n=10**9).high == 1.0
    assert wilson_interval(successes=0, n=0) is None
    with pytest.raises(ValueError, match=r"within 0\.\.n"):
        wilson_interval(successes=3, n=2)


# --- Two proportions ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(successes_of_n(), successes_of_n())
@example((0, 1), (1, 1))
@example((1, 10**9), (2, 10**9))
@example((0, 10**9), (10**9, 10**9))
def test_two_proportions_equal_statsmodels(group_a, group_b):
    (successes_a, n_a), (successes_b, n_b) = group_a, group_b
    comparison = compare_proportions(successes_a=successes_a, n_a=n_a, successes_b=successes_b, n_b=n_b)
    assert comparison.difference == successes_b / n_b - successes_a / n_a
    if successes_a + successes_b in (0, n_a + n_b):  # both at 0% or both at 100%
        assert (comparison.low, comparison.high, comparison.p_value) == (None, None, None)
        assert not comparison.significant
        return
    # Newcombe's method 10 is statsmodels' "newcomb" (from its two Wilson intervals), for
    # count1/nobs1 − count2/nobs2. The pooled z-test is proportions_ztest, which pools by
    # default; test_proportions_2indep(method="score") is it only with correction=False (by
    # default it scales the variance by n / (n − 1), Miettinen & Nurminen).
    low, high = confint_proportions_2indep(
        successes_b, n_b, successes_a, n_a, method="newcomb", compare="diff"
    )
    _, p_value = proportions_ztest([successes_b, successes_a], [n_b, n_a])
    assert (comparison.low, comparison.high) == (close(low), close(high))
    assert comparison.p_value == close(p_value)
    assert comparison.significant == (p_value < 0.05)


def test_two_proportions_of_newcombes_example():
    # Newcombe (1998), Statistics in Medicine 17:873–890, the worked example: 56/70 against
    # 48/80, method 10: 0.0524 to 0.3339.
    comparison = compare_proportions(successes_a=48, n_a=80, successes_b=56, n_b=70)
    assert comparison.difference == pytest.approx(0.2)
    assert (round(comparison.low, 4), round(comparison.high, 4)) == (0.0524, 0.3339)
    assert comparison.significant


def test_two_proportions_are_undefined_without_data_or_without_variance():
    assert compare_proportions(successes_a=0, n_a=0, successes_b=3, n_b=10) == UNDEFINED
    assert compare_proportions(successes_a=0, n_a=20, successes_b=0, n_b=30) == Comparison(
        difference=0.0, low=None, high=None, p_value=None
    )
    both_full = compare_proportions(successes_a=5, n_a=5, successes_b=7, n_b=7)
    assert (both_full.difference, both_full.p_value, both_full.significant) == (0.0, None, False)


# --- Student's t -------------------------------------------------------------------------------

degrees_of_freedom = st.one_of(
    st.integers(1, 40), st.floats(1, 1e7), st.sampled_from([1e3, 1e4, 1e5, 1e6, 1e7]), st.floats(0.5, 1)
)


@settings(max_examples=500, deadline=None)
@given(
    probability=st.one_of(
        st.sampled_from([0.975, 0.025, 0.95, 0.995]),
        st.floats(1e-12, 1 - 1e-12),
        st.floats(0.5, 1, exclude_min=True, exclude_max=True),
    ),
    df=degrees_of_freedom,
)
@example(probability=0.975, df=1)
@example(probability=0.975, df=1e7)
@example(probability=1 - 1e-12, df=1)
def test_t_quantile_equals_scipy(probability, df):
    # t near 0 (probability near ½) is known to ~1e-16 absolute, as in scipy.
    assert student_t_quantile(probability=probability, df=df) == pytest.approx(
        stats.t.ppf(probability, df), rel=1e-10, abs=1e-13
    )


def test_t_quantile_of_the_tables():
    # t_{0.975} of every statistics textbook's table, 3 decimals.
    table = {1: 12.706, 2: 4.303, 5: 2.571, 10: 2.228, 30: 2.042, 120: 1.980}
    assert {df: round(student_t_quantile(probability=0.975, df=df), 3) for df in table} == table
    assert student_t_quantile(probability=0.975, df=1e12) == pytest.approx(NormalDist().inv_cdf(0.975))


@settings(max_examples=500, deadline=None)
@given(t=st.floats(-60, 60), df=st.one_of(degrees_of_freedom, st.floats(1e7, 1e10)))
@example(t=0.0, df=3)
@example(t=1.96, df=1e9)
@example(t=40.0, df=1e6)
@example(t=9.331943320316607e-10, df=1.0)
def test_t_tail_equals_scipy(t, df):
    # With 1 degree of freedom (Cauchy) scipy's t.sf loses digits near 0 (0.5 for t = 9.3e-10,
    # where 0.5 − atan(t)/π = 0.4999999997): there, the closed form (scipy's cauchy.sf).
    expected = stats.cauchy.sf(t) if df == 1 else stats.t.sf(t, df)
    assert student_t_sf(t=t, df=df) == pytest.approx(expected, rel=RELATIVE, abs=1e-300)


# --- Means -------------------------------------------------------------------------------------

csat_counts = st.fixed_dictionaries(
    {score: st.one_of(st.integers(0, 3), st.integers(0, 10**7)) for score in (1, 2, 3, 4, 5)}
)


def scores_from(counts: dict[int, int]) -> tuple[float | None, float | None, int]:
    """Mean, standard deviation and n of a CSAT distribution, as statsmodels computes them."""
    scores, weights = np.array(list(counts)), np.array(list(counts.values()))
    if weights.sum() < 2:
        return None, None, int(weights.sum())
    stats_ = DescrStatsW(scores.astype(float), weights=weights.astype(float), ddof=1)
    return float(stats_.mean), float(stats_.std), int(weights.sum())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=50))
@example([3])
@example([4, 4, 4])
def test_mean_interval_of_raw_values_equals_statsmodels(values):
    interval = mean_interval(
        Moments(n=len(values), total=sum(values), sum_of_squares=sum(v * v for v in values))
    )
    if len(values) < 2:
        assert interval is None
        return
    low, high = DescrStatsW(np.array(values, dtype=float)).tconfint_mean(alpha=0.05)
    mean = float(np.mean(values))
    assert interval == Interval(
        estimate=close(mean), low=close(low, near_zero=1e-9), high=close(high, near_zero=1e-9)
    )


@settings(max_examples=200, deadline=None)
@given(csat_counts)
@example({1: 0, 2: 0, 3: 1, 4: 0, 5: 0})
@example({1: 0, 2: 0, 3: 0, 4: 0, 5: 10**7})
@example({1: 10**7, 2: 0, 3: 0, 4: 0, 5: 1})
def test_mean_interval_of_a_csat_distribution_equals_scipy(counts):
    interval = mean_interval(Moments.of_scores(counts))
    if sum(counts.values()) < 2:
        assert interval is None
        return
    mean, deviation, n = scores_from(counts)
    if deviation == 0:  # one score only: scipy refuses a scale of 0
        assert interval == Interval(estimate=mean, low=mean, high=mean)
        return
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=deviation / math.sqrt(n))
    assert interval == Interval(estimate=close(mean), low=close(low), high=close(high))


def test_a_variance_below_0_from_rounded_sums_is_0():
    rounded = Moments(n=2, total=1.0, sum_of_squares=0.49999999999999994)  # exact: 0.5
    assert rounded.variance == 0.0
    assert mean_interval(rounded) == Interval(estimate=0.5, low=0.5, high=0.5)


def test_the_variance_of_large_sums_is_exact():
    # Σx² − (Σx)²/n in floats gives 0 or worse here; the values are 10⁹ + 1, 10⁹ + 2, 10⁹ + 3.
    values = [10**9 + 1, 10**9 + 2, 10**9 + 3]
    assert Moments(n=3, total=sum(values), sum_of_squares=sum(v * v for v in values)).variance == 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-1000, 1000), min_size=1, max_size=40),
    st.lists(st.one_of(st.integers(-1000, 1000), st.integers(1, 5)), min_size=1, max_size=40),
)
@example([1, 2], [3])
@example([2, 2], [5, 5, 5])
@example([2, 2], [1, 5])
def test_two_means_of_raw_values_equal_statsmodels(values_a, values_b):
    comparison = compare_means(a=moments_of(values_a), b=moments_of(values_b))
    assert comparison.difference == close(np.mean(values_b) - np.mean(values_a), near_zero=1e-12)
    if min(len(values_a), len(values_b)) < 2 or np.var(values_a) == np.var(values_b) == 0:
        assert (comparison.low, comparison.p_value, comparison.significant) == (None, None, False)
        return
    welch = CompareMeans(DescrStatsW(np.array(values_b, float)), DescrStatsW(np.array(values_a, float)))
    _, p_value, _ = welch.ttest_ind(usevar="unequal")
    low, high = welch.tconfint_diff(alpha=0.05, usevar="unequal")
    assert (comparison.low, comparison.high) == (close(low, near_zero=1e-9), close(high, near_zero=1e-9))
    assert comparison.p_value == close(p_value, near_zero=1e-12)


def moments_of(values: list[int]) -> Moments:
    return Moments(n=len(values), total=sum(values), sum_of_squares=sum(v * v for v in values))


@settings(max_examples=200, deadline=None)
@given(csat_counts, csat_counts)
@example({1: 0, 2: 0, 3: 0, 4: 10**7, 5: 10**7}, {1: 0, 2: 0, 3: 0, 4: 10**7, 5: 10**7 + 3000})
def test_two_csat_means_equal_scipy(counts_a, counts_b):
    comparison = compare_means(a=Moments.of_scores(counts_a), b=Moments.of_scores(counts_b))
    (mean_a, deviation_a, n_a), (mean_b, deviation_b, n_b) = scores_from(counts_a), scores_from(counts_b)
    if min(n_a, n_b) < 2 or deviation_a == deviation_b == 0:
        assert (comparison.low, comparison.p_value) == (None, None)
        return
    # scipy's Welch test from the same summary statistics; the interval from its t quantile.
    _, p_value = stats.ttest_ind_from_stats(
        mean_b, deviation_b, n_b, mean_a, deviation_a, n_a, equal_var=False
    )
    share_a, share_b = deviation_a**2 / n_a, deviation_b**2 / n_b
    df = (share_a + share_b) ** 2 / (share_a**2 / (n_a - 1) + share_b**2 / (n_b - 1))
    half_width = stats.t.ppf(0.975, df) * math.sqrt(share_a + share_b)
    difference = mean_b - mean_a
    assert comparison.difference == close(difference, near_zero=1e-12)
    assert (comparison.low, comparison.high) == (
        close(difference - half_width, near_zero=1e-12),
        close(difference + half_width, near_zero=1e-12),
    )
    assert comparison.p_value == close(p_value, near_zero=1e-12)


def test_two_means_are_undefined_with_fewer_than_2_values_or_no_variance():
    assert compare_means(a=moments_of([]), b=moments_of([1, 2])) == UNDEFINED
    assert compare_means(a=moments_of([3]), b=moments_of([1, 2])) == Comparison(
        difference=-1.5, low=None, high=None, p_value=None
    )
    assert compare_means(a=moments_of([4, 4]), b=moments_of([5, 5, 5])) == Comparison(
        difference=1.0, low=None, high=None, p_value=None
    )


# --- Volumes -----------------------------------------------------------------------------------

window_lengths = st.one_of(
    st.just(timedelta(days=7)), st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=400))
)


@settings(max_examples=300, deadline=None)
@given(
    count_a=st.one_of(st.integers(0, 30), st.integers(0, 5_000_000)),
    count_b=st.one_of(st.integers(0, 30), st.integers(0, 5_000_000)),
    length_a=window_lengths,
    length_b=window_lengths,
)
@example(count_a=5_000_000, count_b=5_003_000, length_a=timedelta(days=7), length_b=timedelta(days=7))
@example(count_a=0, count_b=3, length_a=timedelta(days=7), length_b=timedelta(days=7))
@example(count_a=1063, count_b=0, length_a=timedelta(days=1), length_b=timedelta(days=1))
def test_volumes_equal_scipys_binomial_test(count_a, count_b, length_a, length_b):
    comparison = compare_volumes(count_a=count_a, count_b=count_b, length_a=length_a, length_b=length_b)
    if count_a == 0:
        assert comparison.relative_change is None
    else:
        assert comparison.relative_change == close(100 * (count_b - count_a) / count_a)
    if count_a + count_b == 0:
        assert (comparison.p_value, comparison.significant) == (None, False)
        return
    # Below 1e-200 scipy's tails underflow before ours (ours are checked exactly below).
    expected = stats.binomtest(count_b, count_a + count_b, length_b / (length_a + length_b)).pvalue
    assert comparison.p_value == close(expected, near_zero=1e-200)


@settings(max_examples=150, deadline=None)
@given(
    count_a=st.integers(0, 100),
    count_b=st.integers(0, 100),
    days_a=st.sampled_from([1, 7, 28]),
    days_b=st.sampled_from([1, 7, 28]),
)
def test_volumes_equal_the_exact_sum_of_binomial_probabilities(count_a, count_b, days_a, days_b):
    # scipy.stats.binomtest's two-sided rule in exact rational arithmetic (at the float rate,
    # as the module has it), at any magnitude.
    n = count_a + count_b
    if n == 0:
        return
    rate = days_b / (days_a + days_b)
    probabilities = [
        math.comb(n, x) * Fraction(rate) ** x * (1 - Fraction(rate)) ** (n - x) for x in range(n + 1)
    ]
    level = probabilities[count_b] * Fraction(1 + 1e-7)
    expected = 1.0 if count_b == rate * n else min(1.0, float(sum(p for p in probabilities if p <= level)))
    p_value = compare_volumes(
        count_a=count_a, count_b=count_b, length_a=timedelta(days=days_a), length_b=timedelta(days=days_b)
    ).p_value
    assert p_value == pytest.approx(expected, rel=1e-12)


def test_volumes_refuse_negative_counts_and_lengths():
    with pytest.raises(ValueError, match="non-negative"):
        compare_volumes(count_a=-1, count_b=3, length_a=timedelta(days=1), length_b=timedelta(days=1))
    with pytest.raises(ValueError, match="non-negative"):
        compare_volumes(count_a=0, count_b=3, length_a=timedelta(days=-1), length_b=timedelta(days=1))


def test_an_empty_window_has_no_volume_test():
    # A window 0 long (a_start == a_end) holds nothing: no rate, so no test (not an error).
    found = compare_volumes(count_a=0, count_b=3, length_a=timedelta(0), length_b=timedelta(days=1))
    assert found == VolumeComparison(relative_change=None, p_value=None)
    assert not found.significant


# --- Benjamini–Hochberg ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0.0, 0.01, 0.04, 1.0])), max_size=40))
def test_benjamini_hochberg_equals_statsmodels(p_values):
    known = [p for p in p_values if p is not None]
    q_values = benjamini_hochberg(p_values)
    assert [q is None for q in q_values] == [p is None for p in p_values]
    if known:
        expected = multipletests(known, alpha=0.05, method="fdr_bh")[1]
        assert [q for q in q_values if q is not None] == [close(q, near_zero=1e-300) for q in expected]


def test_benjamini_hochbergs_example():
    # Benjamini & Hochberg (1995), JRSS B 57:289–300, §4: 15 p-values, 4 discoveries at 0.05.
    p_values = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459]
    p_values += [0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000]
    assert [is_significant(q) for q in benjamini_hochberg(p_values)] == [True] * 4 + [False] * 11
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([None, 0.01, None]) == [None, 0.01, None]


# --- Sample size -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(baseline=st.floats(0, 1), change=st.one_of(st.sampled_from([0.02, 0.05]), st.floats(0.001, 0.5)))
@example(baseline=0.0, change=0.02)
@example(baseline=1.0, change=0.05)
def test_sample_size_equals_the_formula_with_scipys_normal_quantiles(baseline, change):
    # Fleiss, Levin & Paik (2003), ch. 4, without continuity correction.
    other = baseline + change if baseline + change <= 1 else baseline - change
    mean_rate = (baseline + other) / 2
    root = stats.norm.ppf(0.975) * math.sqrt(2 * mean_rate * (1 - mean_rate)) + stats.norm.ppf(
        0.8
    ) * math.sqrt(baseline * (1 - baseline) + other * (1 - other))
    expected = math.ceil(root**2 / change**2)
    assert sample_size_per_arm(baseline=baseline, change=change) == expected


def test_sample_size_by_hand_and_undefined():
    # 50% to 60%: (1.96 √(2 · 0.55 · 0.45) + 0.8416 √(0.25 + 0.24))² / 0.1² = 387.3 → 388.
    assert sample_size_per_arm(baseline=0.5, change=0.1) == 388
    assert sample_size_per_arm(baseline=None, change=0.02) is None
    assert sample_size_per_arm(baseline=0.5, change=0.6) is None  # neither 110% nor −10% is a rate
    with pytest.raises(ValueError, match="baseline rate"):
        sample_size_per_arm(baseline=1.5, change=0.02)


# --- Display -----------------------------------------------------------------------------------


def test_p_values_round_to_4_significant_digits_and_significance_is_below_alpha():
    assert [round_p_value(p) for p in (0.0123456, 1.23456e-7, 0.99996, 0.0, 1.0, None)] == [
        0.01235,
        1.235e-07,
        1.0,
        0.0,
        1.0,
        None,
    ]
    assert [is_significant(p) for p in (0.0499999, 0.05, 0.2, None)] == [True, False, False, False]


# --- One-sided tests (alert rules' drop and rise) ----------------------------------------------


@settings(max_examples=200, deadline=None)
@given(successes_of_n(max_n=10**7), successes_of_n(max_n=10**7), st.booleans())
@example((50, 100), (50, 100), True)  # no difference: 0.5 either way
@example((600, 1000), (520, 1000), False)
def test_one_sided_proportions_equal_statsmodels(group_a, group_b, increase):
    (successes_a, n_a), (successes_b, n_b) = group_a, group_b
    comparison = compare_proportions(successes_a=successes_a, n_a=n_a, successes_b=successes_b, n_b=n_b)
    p_value = one_sided_p_value(comparison, increase=increase)
    if comparison.p_value is None:
        assert p_value is None
        return
    _, expected = proportions_ztest(
        [successes_b, successes_a], [n_b, n_a], alternative="larger" if increase else "smaller"
    )
    assert p_value == close(expected, near_zero=1e-12)


@settings(max_examples=200, deadline=None)
@given(csat_counts, csat_counts, st.booleans())
def test_one_sided_csat_means_equal_scipy(counts_a, counts_b, increase):
    comparison = compare_means(a=Moments.of_scores(counts_a), b=Moments.of_scores(counts_b))
    p_value = one_sided_p_value(comparison, increase=increase)
    (mean_a, deviation_a, n_a), (mean_b, deviation_b, n_b) = scores_from(counts_a), scores_from(counts_b)
    if comparison.p_value is None:
        assert p_value is None
        return
    _, expected = stats.ttest_ind_from_stats(
        mean_b,
        deviation_b,
        n_b,
        mean_a,
        deviation_a,
        n_a,
        equal_var=False,
        alternative="greater" if increase else "less",
    )
    assert p_value == close(expected, near_zero=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    count_a=st.one_of(st.integers(0, 30), st.integers(0, 2_000_000)),
    count_b=st.one_of(st.integers(0, 30), st.integers(0, 500_000)),
    weeks=st.integers(1, 4),
    window=st.timedeltas(min_value=timedelta(minutes=15), max_value=timedelta(days=7)),
    increase=st.booleans(),
)
@example(count_a=400, count_b=100, weeks=4, window=timedelta(hours=1), increase=True)  # at the mean
@example(count_a=0, count_b=0, weeks=1, window=timedelta(hours=1), increase=False)
@example(count_a=0, count_b=7, weeks=2, window=timedelta(hours=1), increase=False)  # every event in b
@example(count_a=9, count_b=0, weeks=3, window=timedelta(hours=1), increase=True)
def test_one_sided_volumes_equal_scipys_binomial_test(count_a, count_b, weeks, window, increase):
    # An alert's baseline: `weeks` earlier windows pooled (a) against the current one (b).
    p_value = volume_one_sided_p_value(
        count_a=count_a, count_b=count_b, length_a=weeks * window, length_b=window, increase=increase
    )
    if count_a + count_b == 0:
        assert p_value is None
        return
    expected = stats.binomtest(
        count_b, count_a + count_b, 1 / (weeks + 1), alternative="greater" if increase else "less"
    ).pvalue
    assert p_value == close(expected, near_zero=1e-200)


def test_one_sided_p_values_of_a_clear_drop():
    # 600 of 1,000 resolved, then 520 of 1,000: z = −0.08 / √(0.56 · 0.44 · 0.002) = −3.604,
    # so p(drop) = Φ(−3.604) = 0.000157 and p(rise) ≈ 1.
    comparison = compare_proportions(successes_a=600, n_a=1000, successes_b=520, n_b=1000)
    assert one_sided_p_value(comparison, increase=False) == pytest.approx(0.000157, rel=1e-2)
    assert one_sided_p_value(comparison, increase=True) == pytest.approx(1 - 0.000157, rel=1e-4)
    assert (
        one_sided_p_value(Comparison(difference=None, low=None, high=None, p_value=None), increase=True)
        is None
    )
