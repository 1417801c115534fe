"""Confidence intervals and tests for comparing two windows: standard library only.

The dashboard compares a window (b) with another one (a): a rate (a proportion of
conversations), a mean (CSAT, turns) or a volume (conversations per window). Each function
names the textbook its formula comes from; tests/test_statistics.py checks each one against
scipy or statsmodels, which only the tests install (requirements-dev.txt).

Conventions: 95% intervals and two-sided tests at ALPHA; a difference is b − a in the units of
its estimate (proportions in 0..1: the caller multiplies by 100 for percentage points); an
undefined value (no data, no variance) is None, never a made-up 0.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from statistics import NormalDist

ALPHA = 0.05  # two-sided tests; intervals at 1 − ALPHA = 95%
POWER = 0.80
_Z = NormalDist().inv_cdf(1 - ALPHA / 2)  # 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95% confidence interval, low ≤ estimate ≤ high."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """Group b against group a: the difference b − a, its 95% interval and two-sided p-value.

    `difference` is None when a group has no data; `low`, `high` and `p_value` are None when the
    test is undefined (each function says when)."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None

    @property
    def significant(self) -> bool:
        return is_significant(self.p_value)


@dataclass(frozen=True)
class VolumeComparison:
    """Events in window b against window a: the change in % and the exact test's p-value."""

    relative_change: float | None  # 100 × (b − a) / a; None when a is 0
    p_value: float | None

    @property
    def significant(self) -> bool:
        return is_significant(self.p_value)


@dataclass(frozen=True)
class Moments:
    """What the registry keeps of a sample for its mean: the count, the sum and the sum of squares."""

    n: int
    total: int | float | Decimal
    sum_of_squares: int | float | Decimal

    @classmethod
    def of_scores(cls, counts: Mapping[int, int]) -> Moments:
        """The moments of a distribution of scores, {score: how many} (CSAT: scores 1 to 5)."""
        return cls(
            n=sum(counts.values()),
            total=sum(score * count for score, count in counts.items()),
            sum_of_squares=sum(score * score * count for score, count in counts.items()),
        )

    @property
    def mean(self) -> float | None:
        return None if self.n == 0 else float(Fraction(self.total) / self.n)

    @property
    def variance(self) -> float | None:
        """The sample variance (Σx² − (Σx)²/n) / (n − 1); None below 2 values.

        In floats this shortcut cancels catastrophically (Chan, Golub & LeVeque 1983, "Algorithms
        for computing the sample variance", The American Statistician 37:242–247), so it is
        worked out exactly in fractions; sums rounded before they reached us may still give a
        negative value, clamped at 0."""
        if self.n < 2:
            return None
        squares = Fraction(self.sum_of_squares) - Fraction(self.total) ** 2 / self.n
        return float(max(squares, Fraction(0)) / (self.n - 1))


def is_significant(p_value: float | None) -> bool:
    """p < ALPHA; for Benjamini–Hochberg q-values, q < ALPHA. An undefined p is not significant."""
    return p_value is not None and p_value < ALPHA


def round_p_value(p_value: float | None) -> float | None:
    """A p-value to 4 significant digits (0.04567, 1.235e-07), for display."""
    return None if p_value is None else float(f"{p_value:.4g}")


# --- Proportions -------------------------------------------------------------------------------


def wilson_interval(*, successes: int, n: int) -> Interval | None:
    """The proportion successes / n with its Wilson score interval; None when n is 0.

    Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22:209–212; method 3 of Newcombe (1998), Statistics in Medicine 17:857–872."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n, not {successes} of {n}")
    if n == 0:
        return None
    share = successes / n
    shrink = 1 + _Z**2 / n
    centre = (share + _Z**2 / (2 * n)) / shrink
    half_width = _Z * math.sqrt(share * (1 - share) / n + _Z**2 / (4 * n * n)) / shrink
    # The bounds at 0 and n are exact: the float formula leaves a rounding error there.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return Interval(estimate=share, low=low, high=high)


def compare_proportions(*, successes_a: int, n_a: int, successes_b: int, n_b: int) -> Comparison:
    """The difference of two proportions b − a (in 0..1), its interval and p-value.

    Interval: Newcombe's hybrid score interval, from the two Wilson intervals (Newcombe 1998,
    "Interval estimation for the difference between independent proportions: comparison of
    eleven methods", Statistics in Medicine 17:873–890, method 10). p-value: the two-sided
    z-test with the pooled proportion (Fleiss, Levin & Paik 2003, Statistical Methods for Rates
    and Proportions, 3rd ed., ch. 3). Undefined when a group is empty, or when the pooled
    proportion is 0 or 1 (both groups at 0% or both at 100%: no variance to test against)."""
    interval_a = wilson_interval(successes=successes_a, n=n_a)
    interval_b = wilson_interval(successes=successes_b, n=n_b)
    if interval_a is None or interval_b is None:
        return Comparison(difference=None, low=None, high=None, p_value=None)
    share_a, share_b = interval_a.estimate, interval_b.estimate
    difference = share_b - share_a
    if successes_a + successes_b in (0, n_a + n_b):
        return Comparison(difference=difference, low=None, high=None, p_value=None)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    z = difference / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return Comparison(
        difference=difference,
        low=difference - math.hypot(share_b - interval_b.low, interval_a.high - share_a),
        high=difference + math.hypot(interval_b.high - share_b, share_a - interval_a.low),
        p_value=math.erfc(abs(z) / math.sqrt(2)),  # 2 × P(Z > |z|), exact in the far tail
    )


def sample_size_per_arm(
    *, baseline: float | None, change: float, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Conversations per window needed to detect a change of a rate (in 0..1) from `baseline`.

    n = (z_{1−α/2} √(2 p̄ q̄) + z_{1−β} √(p1 q1 + p2 q2))² / (p2 − p1)², rounded up, with
    p2 = p1 + change (p1 − change when that passes 1) and p̄ = (p1 + p2) / 2: the formula
    without continuity correction of Fleiss, Levin & Paik (2003), Statistical Methods for Rates
    and Proportions, 3rd ed., ch. 4. None when the baseline is unknown, or when neither
    p1 + change nor p1 − change is a rate."""
    if baseline is None:
        return None
    if not 0 <= baseline <= 1 or not 0 < change <= 1:
        raise ValueError(f"a baseline rate within 0..1 and a change within (0, 1], not {baseline}, {change}")
    other = baseline + change if baseline + change <= 1 else baseline - change
    if other < 0:
        return None
    mean_rate = (baseline + other) / 2
    z_alpha, z_beta = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean_rate * (1 - mean_rate)) + z_beta * math.sqrt(
        baseline * (1 - baseline) + other * (1 - other)
    )
    return math.ceil(root**2 / change**2)


# --- Means -------------------------------------------------------------------------------------


def mean_interval(moments: Moments) -> Interval | None:
    """The mean with its t interval, mean ± t_{0.975, n−1} s / √n (Student 1908, "The probable
    error of a mean", Biometrika 6:1–25). None below 2 values."""
    variance = moments.variance
    if variance is None:
        return None
    mean = moments.mean
    half_width = student_t_quantile(probability=1 - ALPHA / 2, df=moments.n - 1) * math.sqrt(
        variance / moments.n
    )
    return Interval(estimate=mean, low=mean - half_width, high=mean + half_width)


def compare_means(*, a: Moments, b: Moments) -> Comparison:
    """The difference of two means b − a, with Welch's t-test and interval.

    Welch (1947), "The generalization of 'Student's' problem when several different population
    variances are involved", Biometrika 34:28–35; degrees of freedom by Satterthwaite (1946),
    Biometrics Bulletin 2:110–114. Undefined when a group has fewer than 2 values or both
    variances are 0."""
    if a.n == 0 or b.n == 0:
        return Comparison(difference=None, low=None, high=None, p_value=None)
    difference = b.mean - a.mean
    variance_a, variance_b = a.variance, b.variance
    if variance_a is None or variance_b is None or variance_a == variance_b == 0:
        return Comparison(difference=difference, low=None, high=None, p_value=None)
    share_a, share_b = variance_a / a.n, variance_b / b.n  # each mean's squared standard error
    standard_error = math.sqrt(share_a + share_b)
    df = (share_a + share_b) ** 2 / (share_a**2 / (a.n - 1) + share_b**2 / (b.n - 1))
    half_width = student_t_quantile(probability=1 - ALPHA / 2, df=df) * standard_error
    return Comparison(
        difference=difference,
        low=difference - half_width,
        high=difference + half_width,
        p_value=_t_two_sided(difference / standard_error, df),
    )


# --- Volumes -----------------------------------------------------------------------------------


def compare_volumes(
    *, count_a: int, count_b: int, length_a: timedelta, length_b: timedelta
) -> VolumeComparison:
    """Events in window b against window a, windows of any lengths.

    Relative change: 100 × (b − a) / a, None when a is 0. p-value: the exact conditional test
    of two Poisson rates (Lehmann & Romano, Testing Statistical Hypotheses, 3rd ed., §4.5):
    given a + b events, b ~ Binomial(a + b, p0), p0 = length_b / (length_a + length_b) under
    equal rates; two-sided by scipy.stats.binomtest's rule (the probabilities of the outcomes no
    likelier than the observed one, with its relative tolerance of 1e-7). None when a + b is 0
    or a window is empty (0 long: it holds no event, and there is no rate to compare)."""
    if count_a < 0 or count_b < 0 or length_a < timedelta(0) or length_b < timedelta(0):
        raise ValueError("counts and window lengths must be non-negative")
    relative_change = None if count_a == 0 else 100 * (count_b - count_a) / count_a
    n = count_a + count_b
    if n == 0 or length_a == timedelta(0) or length_b == timedelta(0):
        return VolumeComparison(relative_change=relative_change, p_value=None)
    p, q = length_b / (length_a + length_b), length_a / (length_a + length_b)
    return VolumeComparison(relative_change=relative_change, p_value=_binomial_two_sided_p(count_b, n, p, q))


# --- One-sided tests (alert rules) --------------------------------------------------------------


def one_sided_p_value(found: Comparison, *, increase: bool) -> float | None:
    """The one-sided p-value of a z- or Welch t-test from its two-sided one: for the alternative
    "b is greater than a" (increase) or "b is less than a".

    Both statistics have a distribution symmetric about 0 under the null hypothesis, so the tail
    in the direction of the observed difference holds half the two-sided p-value and the other
    tail the rest, 1 − p/2 (e.g. Lehmann & Romano, Testing Statistical Hypotheses, 3rd ed.,
    §3.4 and §5.3). None when the test is undefined."""
    if found.p_value is None or found.difference is None:
        return None
    if found.difference == 0:
        return 1 - found.p_value / 2
    toward = (found.difference > 0) == increase
    return found.p_value / 2 if toward else 1 - found.p_value / 2


def volume_one_sided_p_value(
    *, count_a: int, count_b: int, length_a: timedelta, length_b: timedelta, increase: bool
) -> float | None:
    """The one-sided p-value of the exact conditional test of two Poisson rates
    (compare_volumes): given n = a + b events, b ~ Binomial(n, p0) with p0 = length_b /
    (length_a + length_b) under equal rates, and the p-value is P(X ≥ b) for an increase,
    P(X ≤ b) for a decrease (Lehmann & Romano, §4.5; scipy.stats.binomtest's "greater" and
    "less"). None when n is 0 or a window is empty."""
    if count_a < 0 or count_b < 0 or length_a < timedelta(0) or length_b < timedelta(0):
        raise ValueError("counts and window lengths must be non-negative")
    n = count_a + count_b
    if n == 0 or length_a == timedelta(0) or length_b == timedelta(0):
        return None
    p, q = length_b / (length_a + length_b), length_a / (length_a + length_b)
    # _binomial_tail sums outward from k, so it wants k on its tail's side of the mode; the
    # other side is 1 − the opposite tail.
    if increase:
        if count_b > p * n:
            return min(1.0, _binomial_tail(count_b, n, p, q, upward=True))
        return 1.0 if count_b == 0 else max(0.0, 1 - _binomial_tail(count_b - 1, n, p, q, upward=False))
    if count_b < p * n:
        return min(1.0, _binomial_tail(count_b, n, p, q, upward=False))
    return 1.0 if count_b == n else max(0.0, 1 - _binomial_tail(count_b + 1, n, p, q, upward=True))


# --- Many comparisons at once ------------------------------------------------------------------


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the order given: q_(i) is the least
    p_(j) m / j over j ≥ i, at most 1 (Benjamini & Hochberg 1995, "Controlling the false
    discovery rate", JRSS B 57:289–300). None stays None and is not counted in m."""
    ranked = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    m = len(ranked)
    q_values: list[float | None] = [None] * len(p_values)
    running = 1.0
    for rank in range(m, 0, -1):
        p, index = ranked[rank - 1]
        running = min(running, p * m / rank)
        q_values[index] = running
    return q_values


# --- Student's t, from the regularized incomplete beta function ----------------------------------


def student_t_sf(*, t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom (df > 0, not necessarily whole)."""
    tail = _t_two_sided(t, df) / 2
    return tail if t >= 0 else 1 - tail


@functools.lru_cache(maxsize=4096)  # a series asks for a few degrees of freedom again and again
def student_t_quantile(*, probability: float, df: float) -> float:
    """The t with P(T ≤ t) = probability, for Student's t with df > 0 degrees of freedom.

    Newton's method on the exact distribution function, kept within a bracket (bisection when
    a step leaves it), from the Cornish–Fisher expansion of Abramowitz & Stegun 26.7.5 (already
    right to ~1e-16 for df in the millions, so one or two steps there)."""
    if not 0 < probability < 1 or not df > 0:
        raise ValueError(f"probability within (0, 1) and df > 0, not {probability}, {df}")
    tail = min(probability, 1 - probability)  # 1 − p is exact for p ≥ ½
    if tail == 0.5:
        return 0.0
    target = 2 * tail  # P(|T| ≥ t) at the quantile
    t = _cornish_fisher(-NormalDist().inv_cdf(tail), df)
    low, high = 0.0, math.inf
    for _ in range(200):
        excess = _t_two_sided(t, df) - target  # decreasing in t
        if excess == 0:
            break
        low, high = (t, high) if excess > 0 else (low, t)
        following = t + excess / (2 * _t_density(t, df))
        if not low < following < high:
            following = (low + high) / 2 if high < math.inf else 2 * t + 1
        # Near t = 0, P(|T| ≥ t) = 1 − O(t) is known to ~1e-16 absolute, and t no better.
        if abs(following - t) <= 4 * sys.float_info.epsilon * max(following, 1.0):
            t = following
            break
        t = following
    else:
        raise ArithmeticError(f"no t quantile found for {probability}, df {df}")
    return t if probability > 0.5 else -t


# A&S 26.7.5: t ≈ x + g1(x)/df + g2(x)/df² + g3(x)/df³ + g4(x)/df⁴ for the normal quantile x,
# each g a polynomial in odd powers: (its coefficients of x, x³, x⁵, …), divisor.
_CORNISH_FISHER = (
    ((1, 1), 4),
    ((3, 16, 5), 96),
    ((-15, 17, 19, 3), 384),
    ((-945, -1920, 1482, 776, 79), 92160),
)


def _cornish_fisher(x: float, df: float) -> float:
    return x + sum(
        sum(c * x ** (2 * i + 1) for i, c in enumerate(coefficients)) / divisor / df**order
        for order, (coefficients, divisor) in enumerate(_CORNISH_FISHER, start=1)
    )


def _t_density(t: float, df: float) -> float:
    return math.exp(-(df + 1) / 2 * math.log1p(t * t / df) - _log_beta_half(df / 2)) / math.sqrt(df)


def _t_two_sided(t: float, df: float) -> float:
    """P(|T| ≥ |t|) = I_x(df/2, ½) with x = df / (df + t²) (Abramowitz & Stegun 26.5.27).

    For df ≥ 30 and x ≥ 0.625 (the body of the distribution) by the asymptotic expansion BGRAT
    of DiDonato & Morris (1992), "Algorithm 708: significant digit computation of the
    incomplete beta function ratios", ACM TOMS 18:360–373, which needs only y = 1 − x: a float
    x near 1 has lost y's digits, and the continued fraction loses them with it. Elsewhere by the
    continued fraction A&S 26.5.8."""
    a, b = df / 2, 0.5
    ratio = t * t / df
    if ratio == 0:  # |t| below ~1e-154: 1 − O(|t|) is 1 in floats
        return 1.0
    if ratio <= 1:
        x, y = 1 / (1 + ratio), ratio / (1 + ratio)
        log_x, log_y = -math.log1p(ratio), math.log(ratio) - math.log1p(ratio)
    else:
        inverse = df / abs(t) / abs(t)
        if inverse == 0:
            return 0.0
        x, y = inverse / (1 + inverse), 1 / (1 + inverse)
        log_x, log_y = math.log(inverse) - math.log1p(inverse), -math.log1p(inverse)
    if a >= 15 and y <= 0.375:
        return _bgrat_half(a, log_x)
    log_front = a * log_x + b * log_y - _log_beta_half(a)  # ln(x^a y^b / B(a, b))
    # The fraction converges fast below the mean of the beta distribution, (a + 1) / (a + b + 2)
    # (Numerical Recipes, 3rd ed., §6.4): above it, use I_x(a, b) = 1 − I_y(b, a).
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (A&S 26.5.8) by the modified Lentz method
    (Numerical Recipes, 3rd ed., §5.2, and its betacf, §6.4)."""
    tiny = 1e-300  # keeps a denominator off 0

    def nonzero(value: float) -> float:
        return value if abs(value) >= tiny else tiny

    c, d = 1.0, 1 / nonzero(1 - (a + b) * x / (a + 1))
    fraction = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 / nonzero(1 + numerator * d)
            c = nonzero(1 + numerator / c)
            fraction *= d * c
        if abs(d * c - 1) <= sys.float_info.epsilon:
            return fraction
    raise ArithmeticError(f"the continued fraction of I_{x}({a}, {b}) did not converge")


def _bgrat_coefficients(b: float, terms: int) -> list[float]:
    """The d_n of BGRAT's series: constants for a given b (DiDonato & Morris 1992)."""
    c, d = [], []
    for n in range(1, terms + 1):
        c.append((c[-1] if c else 1.0) / ((2 * n) * (2 * n + 1)))
        convolution = sum((i * b - n) * c[i - 1] * d[n - i - 1] for i in range(1, n))
        d.append((b - 1) * c[-1] + convolution / n)
    return d


_BGRAT_HALF = _bgrat_coefficients(0.5, 30)


def _bgrat_half(a: float, log_x: float) -> float:
    """I_x(a, ½) for a ≥ 15 by BGRAT (DiDonato & Morris 1992, ACM TOMS 18:360–373), with b = ½:
    its incomplete gamma ratio Q(½, z) is erfc(√z). Each term carries R = e^(−z) z^b / Γ(b), so
    that a far tail underflows to 0 rather than overflowing."""
    b = 0.5
    nu = a + (b - 1) / 2
    z = -nu * log_x
    r = math.exp(-z) * math.sqrt(z / math.pi)
    v, t2 = 1 / (4 * nu * nu), log_x * log_x / 4
    term, total, power = math.erfc(math.sqrt(z)), math.erfc(math.sqrt(z)), r  # power: R · t2^(n−1)
    for n, d in enumerate(_BGRAT_HALF, start=1):
        term = ((b + 2 * n - 2) * (b + 2 * n - 1) * term + (z + b + 2 * n - 1) * power) * v
        power *= t2
        total += d * term
        if abs(d * term) <= sys.float_info.epsilon * total:
            break
    return total * math.exp(_log_gamma_ratio_half(a) - b * math.log(nu))


def _stirling_correction(x: float) -> float:
    """δ(x) = ln Γ(x) − ((x − ½) ln x − x + ½ ln 2π): Stirling's series for x ≥ 10 (A&S 6.1.41),
    where the difference would cancel; directly below."""
    if x < 10:
        return math.lgamma(x) - (x - 0.5) * math.log(x) + x - math.log(2 * math.pi) / 2
    x2 = x * x
    return (
        1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188 - 691 / 360360 / x2) / x2) / x2) / x2) / x2
    ) / x


def _log_gamma_ratio_half(a: float) -> float:
    """ln Γ(a + ½) − ln Γ(a), without the cancellation of two large lgamma values."""
    if a < 10:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    return (
        (a - 0.5) * math.log1p(0.5 / a)
        + 0.5 * math.log(a + 0.5)
        - 0.5
        + _stirling_correction(a + 0.5)
        - _stirling_correction(a)
    )


def _log_beta_half(a: float) -> float:
    """ln B(a, ½)."""
    return math.log(math.pi) / 2 - _log_gamma_ratio_half(a)


# --- The binomial distribution -----------------------------------------------------------------


def _binomial_log_pmf(k: int, n: int, p: float, q: float) -> float:
    """ln P(X = k), X ~ Binomial(n, p), q = 1 − p, by Loader's saddle-point form (Loader 2000,
    "Fast and accurate computation of binomial probabilities", R's dbinom): accurate for n in
    the billions, where ln C(n, k) from lgamma has lost its last digits."""
    if k == 0:
        return n * math.log(q)
    if k == n:
        return n * math.log(p)
    return (
        _stirling_correction(n)
        - _stirling_correction(k)
        - _stirling_correction(n - k)
        - _deviance_term(k, n * p)
        - _deviance_term(n - k, n * q)
        - (math.log(2 * math.pi * k) + math.log1p(-k / n)) / 2
    )


def _deviance_term(x: float, mean: float) -> float:
    """x ln(x / mean) + mean − x, by a series near x = mean where it would cancel (Loader's bd0)."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total, power = (x - mean) * v, 2 * x * v
        for j in range(1, 1000):
            power *= v * v
            following = total + power / (2 * j + 1)
            if following == total:
                return total
            total = following
    return x * math.log(x / mean) + mean - x


def _binomial_tail(k: int, n: int, p: float, q: float, *, upward: bool) -> float:
    """P(X ≥ k) (upward) or P(X ≤ k), for k on that side of the mode: the terms from k outward,
    each from the last by its ratio. The ratios fall as they go (the pmf is log-concave), so
    what is left after a term is at most term · ratio / (1 − ratio): stop when that is
    negligible, about ten standard deviations past the mean at most."""
    first = math.exp(_binomial_log_pmf(k, n, p, q))
    if first == 0:
        return 0.0
    term = total = 1.0
    x = k
    while x < n if upward else x > 0:
        ratio = (n - x) * p / ((x + 1) * q) if upward else x * q / ((n - x + 1) * p)
        term *= ratio
        total += term
        x += 1 if upward else -1
        if term * ratio <= 1e-17 * total * (1 - ratio):
            break
    return first * total


def _binomial_two_sided_p(k: int, n: int, p: float, q: float) -> float:
    """The two-sided p-value of k successes of n at rate p: as scipy.stats.binomtest, the
    probability of every outcome whose own is at most P(X = k) (× (1 + 1e-7)). The other tail
    starts where the pmf, monotone on that side of the mode, falls to that level: found by
    binary search, as scipy does."""
    if k == p * n:
        return 1.0
    level = _binomial_log_pmf(k, n, p, q) + math.log1p(1e-7)

    def likelier(x: int) -> bool:
        return _binomial_log_pmf(x, n, p, q) > level

    if k < p * n:
        start = _first(math.ceil(p * n), n, lambda x: not likelier(x))
        other = _binomial_tail(start, n, p, q, upward=True) if start <= n else 0.0
        return min(1.0, _binomial_tail(k, n, p, q, upward=False) + other)
    end = _first(0, math.floor(p * n), likelier) - 1
    other = _binomial_tail(end, n, p, q, upward=False) if end >= 0 else 0.0
    return min(1.0, other + _binomial_tail(k, n, p, q, upward=True))


def _first(low: int, high: int, holds: Callable[[int], bool]) -> int:
    """The least x in low..high where `holds`, false then true along the range; high + 1 if none."""
    while low <= high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle - 1
        else:
            low = middle + 1
    return low
