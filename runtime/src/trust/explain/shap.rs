//! Kernel SHAP (Lundberg & Lee 2017): which coalitions to evaluate, with their kernel weights,
//! and the constrained weighted least squares that turns their scores into attributions.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::super::{Limits, TrustError};
use super::failed;

/// The number of Kernel SHAP coalitions to evaluate for `m` features: as asked (default
/// `2·m + 2048`, at most [`Limits::max_samples`]), but never more than the `2^m − 2` coalitions
/// there are besides the empty and the full one.
pub(super) fn shap_samples(m: usize, asked: Option<usize>, limits: &Limits) -> Result<usize, TrustError> {
    let samples = match asked {
        Some(0) => return Err(TrustError::invalid("samples must be at least 1")),
        Some(n) if n > limits.max_samples => {
            return Err(TrustError::invalid(format!("samples {n} exceeds the limit of {}", limits.max_samples)));
        }
        Some(n) => n,
        None => m.saturating_mul(2).saturating_add(2048).min(limits.max_samples),
    };
    let coalitions =
        u32::try_from(m).ok().and_then(|m| 1usize.checked_shl(m)).map_or(usize::MAX, |all| all.saturating_sub(2));
    Ok(samples.min(coalitions))
}

/// Kernel SHAP coalitions (bitsets of present features) and their kernel weights.
#[derive(Debug, Default)]
pub(super) struct Coalitions {
    pub(super) words: usize,
    pub(super) masks: Vec<u64>,
    pub(super) weights: Vec<f64>,
}

impl Coalitions {
    pub(super) fn len(&self) -> usize {
        self.weights.len()
    }

    pub(super) fn present(&self, k: usize, f: usize) -> bool {
        self.masks[k * self.words + f / 64] >> (f % 64) & 1 == 1
    }

    fn push(&mut self, mask: &[u64], weight: f64) {
        self.masks.extend_from_slice(mask);
        self.weights.push(weight);
    }

    /// Coalitions for `m ≥ 2` features within a budget of `samples`, as the SHAP reference
    /// implementation chooses them (`KernelExplainer.explain`): subset sizes `s` and `m − s`
    /// enumerated whole, smallest first, while the budget covers them at their kernel weight;
    /// the rest sampled from the kernel restricted to the other sizes, each sample with its
    /// complement, duplicates merged into their weight.
    pub(super) fn sample(m: usize, samples: usize, rng: &mut StdRng) -> Coalitions {
        let words = m.div_ceil(64);
        let mut out = Coalitions { words, ..Coalitions::default() };
        let sizes = m / 2; // ceil((m − 1) / 2)
        let paired = (m - 1) / 2;
        let mut weight_vector: Vec<f64> = (1..=sizes)
            .map(|s| {
                let w = (m - 1) as f64 / (s * (m - s)) as f64;
                if s <= paired { 2.0 * w } else { w }
            })
            .collect();
        let sum: f64 = weight_vector.iter().sum();
        weight_vector.iter_mut().for_each(|w| *w /= sum);

        let mut left = samples as f64;
        let mut remaining = weight_vector.clone();
        let mut full = 0;
        let mut mask = vec![0u64; words];
        for s in 1..=sizes {
            let subsets = binomial(m, s) * if s <= paired { 2.0 } else { 1.0 };
            if left * remaining[s - 1] / subsets < 1.0 - 1e-8 {
                break;
            }
            full += 1;
            left -= subsets;
            if remaining[s - 1] < 1.0 {
                let scale = 1.0 - remaining[s - 1];
                remaining.iter_mut().for_each(|w| *w /= scale);
            }
            let mut weight = weight_vector[s - 1] / binomial(m, s);
            if s <= paired {
                weight /= 2.0;
            }
            let mut combination: Vec<usize> = (0..s).collect();
            loop {
                mask.fill(0);
                combination.iter().for_each(|&f| mask[f / 64] |= 1 << (f % 64));
                out.push(&mask, weight);
                if s <= paired {
                    complement(&mut mask, m);
                    out.push(&mask, weight);
                }
                if !next_combination(&mut combination, m) {
                    break;
                }
            }
        }
        let fixed = out.len();
        let mut left = samples.saturating_sub(fixed);
        if full < sizes && left > 0 {
            let mut remaining: Vec<f64> = weight_vector
                .iter()
                .enumerate()
                .skip(full)
                .map(|(i, &w)| if i < paired { w / 2.0 } else { w })
                .collect();
            let sum: f64 = remaining.iter().sum();
            remaining.iter_mut().for_each(|w| *w /= sum);
            // Each drawn mask → its index and its complement's, when one was added.
            let mut seen: HashMap<Vec<u64>, (usize, Option<usize>)> = HashMap::new();
            let mut draws = 4 * left;
            while left > 0 && draws > 0 {
                draws -= 1;
                let size = full + 1 + pick(&remaining, rng);
                mask.fill(0);
                rand::seq::index::sample(rng, m, size).iter().for_each(|f| mask[f / 64] |= 1 << (f % 64));
                let with_complement = size <= paired;
                match seen.get(&mask) {
                    Some(&(k, other)) => {
                        out.weights[k] += 1.0;
                        if let Some(other) = other {
                            out.weights[other] += 1.0;
                        }
                    }
                    None => {
                        let k = out.len();
                        out.push(&mask, 1.0);
                        left -= 1;
                        let mut other = None;
                        if with_complement && left > 0 {
                            let drawn = mask.clone();
                            complement(&mut mask, m);
                            other = Some(out.len());
                            out.push(&mask, 1.0);
                            left -= 1;
                            mask = drawn;
                        }
                        seen.insert(mask.clone(), (k, other));
                    }
                }
            }
            let weight_left: f64 = weight_vector[full..].iter().sum();
            let drawn: f64 = out.weights[fixed..].iter().sum();
            if drawn > 0.0 {
                out.weights[fixed..].iter_mut().for_each(|w| *w *= weight_left / drawn);
            }
        }
        out
    }
}

/// `n choose k` as a float (exact below 2⁵³, close enough above for budget comparisons).
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Flips the first `m` bits of `mask`.
fn complement(mask: &mut [u64], m: usize) {
    for (i, word) in mask.iter_mut().enumerate() {
        let bits = (m - i * 64).min(64);
        let valid = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        *word = !*word & valid;
    }
}

/// Advances `c` (strictly increasing indices below `n`) to the next combination in
/// lexicographic order; `false` after the last one.
fn next_combination(c: &mut [usize], n: usize) -> bool {
    let k = c.len();
    let Some(i) = (0..k).rev().find(|&i| c[i] < n - k + i) else { return false };
    c[i] += 1;
    for j in i + 1..k {
        c[j] = c[j - 1] + 1;
    }
    true
}

/// An index drawn with probability proportional to `weights` (which sum to 1).
fn pick(weights: &[f64], rng: &mut StdRng) -> usize {
    let mut u: f64 = rng.random();
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Kernel SHAP's constrained weighted least squares.
///
/// Fits `f(z) − f(∅) ≈ Σ φⱼ zⱼ` over the coalitions with their weights, subject to
/// `Σ φⱼ = f(full) − f(∅)`, by eliminating the last feature (as the SHAP reference does):
/// `φ_last = total − Σ_{j<last} φⱼ`, so the regressors become `zⱼ − z_last` and the target
/// `f(z) − f(∅) − z_last · total`. The normal equations are solved by Cholesky with a tiny
/// ridge (relative `1e-9` of the mean diagonal), enough to make the system positive definite
/// when there are fewer coalitions than features while leaving well-posed fits unchanged.
pub(super) fn solve_shap(
    m: usize,
    coalitions: &Coalitions,
    scores: &[f64],
    empty: f64,
    full: f64,
) -> Result<Vec<f64>, TrustError> {
    let total = full - empty;
    if m == 1 {
        return Ok(vec![total]);
    }
    let n = m - 1;
    let mut a = vec![0f64; n * n];
    let mut b = vec![0f64; n];
    let mut set = Vec::with_capacity(n);
    for (k, (&weight, &score)) in coalitions.weights.iter().zip(scores).enumerate() {
        let last = coalitions.present(k, n);
        // Regressors: zⱼ − z_last ∈ {0, ±1}; nonzero on `set` with `sign`.
        set.clear();
        set.extend((0..n).filter(|&j| coalitions.present(k, j) != last));
        let sign = if last { -1.0 } else { 1.0 };
        let y = score - empty - if last { total } else { 0.0 };
        for &i in &set {
            b[i] += weight * sign * y;
            let row = &mut a[i * n..(i + 1) * n];
            for &j in &set {
                row[j] += weight;
            }
        }
    }
    let mean_diagonal = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
    let mut ridge = 1e-9 * mean_diagonal.max(f64::MIN_POSITIVE);
    for _ in 0..6 {
        if let Some(mut phi) = cholesky_solve(&a, &b, n, ridge) {
            let rest: f64 = phi.iter().sum();
            phi.push(total - rest);
            if phi.iter().all(|v| v.is_finite()) {
                return Ok(phi);
            }
        }
        ridge *= 1000.0;
    }
    Err(failed("the Kernel SHAP fit did not converge (scores not finite?)"))
}

/// Solves `(A + ridge·I) x = b` for a symmetric `n × n` `A` by Cholesky; `None` when the
/// matrix is not numerically positive definite.
fn cholesky_solve(a: &[f64], b: &[f64], n: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j] + if i == j { ridge } else { 0.0 };
            sum -= (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if sum.is_nan() || sum <= 0.0 {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut y = vec![0f64; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn coalitions_enumerate_when_the_budget_allows() {
        let mut rng = StdRng::seed_from_u64(0);
        for m in [2usize, 3, 5, 8] {
            let all = (1 << m) - 2;
            let c = Coalitions::sample(m, all, &mut rng);
            assert_eq!(c.len(), all, "m = {m}");
            let mut seen: Vec<&[u64]> = c.masks.chunks(c.words).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), all, "m = {m}: duplicates");
            // Exact Shapley kernel: weight ∝ (m − 1) / (C(m, s) s (m − s)).
            let kernel = |s: usize| (m - 1) as f64 / (binomial(m, s) * (s * (m - s)) as f64);
            let size = |k: usize| (0..m).filter(|&f| c.present(k, f)).count();
            let ratio = c.weights[0] / kernel(size(0));
            for k in 0..c.len() {
                assert!((c.weights[k] / kernel(size(k)) - ratio).abs() < 1e-12, "m = {m}, coalition {k}");
            }
        }
        // Sampled: within budget, no empty or full coalition, positive weights.
        let c = Coalitions::sample(100, 500, &mut rng);
        assert!(c.len() <= 500 && c.len() > 400, "{}", c.len());
        for k in 0..c.len() {
            let size = (0..100).filter(|&f| c.present(k, f)).count();
            assert!(size > 0 && size < 100);
            assert!(c.weights[k] > 0.0);
        }
        assert!(!c.present(0, 100) && c.words == 2);
    }

    #[test]
    fn helpers_work() {
        let mut combination = vec![0, 1];
        let mut count = 1;
        while next_combination(&mut combination, 4) {
            count += 1;
        }
        assert_eq!(count, 6);
        assert_eq!(binomial(10, 3), 120.0);
        let mut mask = vec![0b101u64, 0];
        complement(&mut mask, 66);
        assert_eq!(mask, vec![!0b101u64, 0b11]);
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0], 2, 0.0).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12, "{x:?}");
        assert!(cholesky_solve(&[-1.0], &[1.0], 1, 0.0).is_none());
    }
}
