//! The interleaved A/B harness.
//!
//! Each candidate is a closure that runs `n` operations and returns the time they took (it
//! may prepare inputs untimed). The harness first calibrates `n` so that one block of each
//! candidate takes about the block time, then runs the candidates in turn, block after block,
//! for a number of rounds, rotating the order each round. Background load on a shared machine
//! drifts slowly compared with a block, so it hits every candidate of a round alike; the
//! ratio of two candidates is taken per round, and its median over the rounds is reported.
//!
//! Time is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on a shared
//! 2-core machine a block is often descheduled for a few milliseconds, and wall time would
//! charge that to whichever candidate was running.

use std::time::Duration;

use cpu_time::ThreadTime;

/// The calling thread's CPU time so far: take one before and `elapsed()` after.
pub fn cpu_clock() -> ThreadTime {
    ThreadTime::now()
}

/// A candidate: runs `n` operations, returns the time they took.
pub type Candidate<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// Nanoseconds per operation, per round (`[round][candidate]`).
pub struct Measurements {
    /// `ns[round][candidate]`.
    pub ns: Vec<Vec<f64>>,
}

impl Measurements {
    /// Per-round `candidate / baseline` ratios.
    pub fn ratios(&self, candidate: usize, baseline: usize) -> Vec<f64> {
        self.ns.iter().map(|r| r[candidate] / r[baseline]).collect()
    }

    /// Per-round ns/op of one candidate.
    pub fn of(&self, candidate: usize) -> Vec<f64> {
        self.ns.iter().map(|r| r[candidate]).collect()
    }
}

/// The `q` quantile (0..=1) of `values` (nearest rank on a sorted copy).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let at = ((v.len() - 1) as f64 * q).round() as usize;
    v[at.min(v.len() - 1)]
}

/// Median.
pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// How many operations of `candidate` fill about `block`.
pub fn calibrate(candidate: &mut Candidate<'_>, block: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let took = candidate(n);
        if took >= block / 4 || n >= 1 << 30 {
            let per_op = took.as_secs_f64() / n as f64;
            return ((block.as_secs_f64() / per_op.max(1e-12)) as u64).max(1);
        }
        n *= 4;
    }
}

/// Run `rounds` rounds of one block of each candidate (order rotated every round), after one
/// warm-up round.
pub fn interleave(
    candidates: &mut [Candidate<'_>],
    rounds: usize,
    block: Duration,
) -> Measurements {
    let sizes: Vec<u64> = candidates.iter_mut().map(|c| calibrate(c, block)).collect();
    let k = candidates.len();
    let mut ns = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let mut row = vec![0.0; k];
        for i in 0..k {
            let c = (i + round) % k;
            let took = candidates[c](sizes[c]);
            row[c] = took.as_nanos() as f64 / sizes[c] as f64;
        }
        if round > 0 {
            ns.push(row);
        }
    }
    Measurements { ns }
}

/// The thread CPU time of `n` runs of `op`.
pub fn timed<R>(n: u64, mut op: impl FnMut() -> R) -> Duration {
    let start = cpu_clock();
    for _ in 0..n {
        std::hint::black_box(op());
    }
    start.elapsed()
}
