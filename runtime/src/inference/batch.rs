//! Dynamic batching: concurrent calls on one model with the same shapes past the batch
//! dimension run as one batch.
//!
//! There is no batching thread. Calls join a `Queue` (one per model, per-row shapes and
//! policy); a caller that finds a free *lane* (one per core per queue, as a tract run uses
//! one) and no other leader gathering becomes a *leader*: it waits up to the policy's delay
//! for more rows, takes up to `max_batch_size` rows from the front, runs them as one tract
//! run, splits the outputs by rows and hands every caller its own. With a delay of 0 a lone call runs at once,
//! and calls arriving while every lane is busy form the next batch: batches grow exactly when
//! the model is the bottleneck.
//!
//! A batch that fails, or whose outputs cannot be split by rows, is run again call by call,
//! so one caller's bad input never becomes another's error.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{InferenceError, RawTensor};

/// How a function batches its inference calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchPolicy {
    /// Most rows in one batch.
    pub max_batch_size: usize,
    /// How long the first call of a batch waits for more rows.
    pub max_queue_delay: Duration,
}

/// Outputs of one call and the number of rows in the batch it ran in.
pub type Batched = (Result<Vec<RawTensor>, InferenceError>, usize);

/// Runs one tract call; `true` when the inputs are several calls stacked.
pub(super) type Runner<'a> = dyn Fn(Vec<RawTensor>, bool) -> Result<Vec<RawTensor>, InferenceError> + 'a;

/// The batch queues of one model.
#[derive(Default)]
pub(super) struct Batches {
    queues: Mutex<HashMap<QueueKey, Arc<Queue>>>,
}

/// Calls batch together only with calls of the same per-row shapes and the same policy.
#[derive(Clone, PartialEq, Eq, Hash)]
struct QueueKey {
    row_shapes: Vec<Vec<usize>>,
    policy: BatchPolicy,
}

impl Batches {
    /// Runs `inputs` (checked, in graph order, all with `rows` rows) in a batch with
    /// whatever else is queued. `run` executes one (possibly stacked) call.
    pub(super) fn run(&self, inputs: Vec<RawTensor>, rows: usize, policy: BatchPolicy, run: &Runner) -> Batched {
        let key = QueueKey { row_shapes: inputs.iter().map(|t| t.shape[1..].to_vec()).collect(), policy };
        let queue = {
            let mut queues = self.queues.lock().expect("batch queues lock");
            // A queue no caller holds is empty; dropping those keeps shapes seen once from
            // piling up.
            queues.retain(|_, q| Arc::strong_count(q) > 1);
            queues.entry(key).or_default().clone()
        };
        queue.run(inputs, rows, policy, run)
    }
}

#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    /// Wakes the gathering leader when a call arrives.
    arrived: Condvar,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Entry>,
    /// Batches running or gathering now (at most [`lanes`]).
    running: usize,
    /// Whether a leader is gathering rows; a new leader waits for it to finish.
    gathering: bool,
}

struct Entry {
    ticket: Arc<Ticket>,
    inputs: Vec<RawTensor>,
    rows: usize,
    arrived: Instant,
}

/// One waiting call: woken alone (no herd of waiters) when it must lead or is done.
#[derive(Default)]
struct Ticket {
    state: Mutex<Turn>,
    changed: Condvar,
}

#[derive(Default)]
enum Turn {
    #[default]
    Waiting,
    /// A lane is reserved for this caller: it gathers and runs the next batch.
    Lead,
    Done(Batched),
}

impl Ticket {
    fn set(&self, turn: Turn) {
        *self.state.lock().expect("batch ticket lock") = turn;
        self.changed.notify_one();
    }
}

impl Queue {
    fn run(&self, inputs: Vec<RawTensor>, rows: usize, policy: BatchPolicy, run: &Runner) -> Batched {
        let ticket = Arc::new(Ticket::default());
        {
            let mut state = self.state.lock().expect("batch queue lock");
            state.waiting.push_back(Entry { ticket: ticket.clone(), inputs, rows, arrived: Instant::now() });
            if state.gathering {
                self.arrived.notify_one();
            }
            promote(&mut state);
        }
        loop {
            let mut turn = ticket.state.lock().expect("batch ticket lock");
            match std::mem::take(&mut *turn) {
                Turn::Done(result) => return result,
                Turn::Lead => {
                    drop(turn);
                    self.lead(policy, run);
                }
                Turn::Waiting => drop(ticket.changed.wait(turn).expect("batch ticket lock")),
            }
        }
    }

    /// Runs one batch on the lane [`promote`] reserved for this caller: gather rows, take a
    /// batch, run it, hand out the results, and pass the lane on. Another leader starts before
    /// the run only when a full batch is left waiting: otherwise it would find only the
    /// stragglers, and small batches waste a lane.
    fn lead(&self, policy: BatchPolicy, run: &Runner) {
        let mut state = self.gather(self.state.lock().expect("batch queue lock"), policy);
        state.gathering = false;
        let batch = take_batch(&mut state.waiting, policy.max_batch_size);
        // A full batch still waiting need not wait for this run: give it a free lane now.
        if state.waiting.iter().map(|e| e.rows).sum::<usize>() >= policy.max_batch_size {
            promote(&mut state);
        }
        drop(state);
        let tickets: Vec<Arc<Ticket>> = batch.iter().map(|e| e.ticket.clone()).collect();
        for (ticket, result) in tickets.iter().zip(run_batch(batch, run)) {
            ticket.set(Turn::Done(result));
        }
        let mut state = self.state.lock().expect("batch queue lock");
        state.running -= 1;
        promote(&mut state);
    }

    /// The leader's wait: until the queue holds `max_batch_size` rows or the oldest call has
    /// waited `max_queue_delay`.
    fn gather<'a>(&self, mut state: MutexGuard<'a, State>, policy: BatchPolicy) -> MutexGuard<'a, State> {
        loop {
            let queued: usize = state.waiting.iter().map(|e| e.rows).sum();
            let Some(oldest) = state.waiting.front() else { return state };
            let deadline = oldest.arrived + policy.max_queue_delay;
            let now = Instant::now();
            if queued >= policy.max_batch_size || now >= deadline {
                return state;
            }
            state = self.arrived.wait_timeout(state, deadline - now).expect("batch queue lock").0;
        }
    }
}

/// Makes the oldest waiting call a leader when a lane is free and nobody is gathering; the
/// lane is reserved here, under the queue lock, so leaders never exceed the lanes.
fn promote(state: &mut State) {
    if state.running < lanes() && !state.gathering && !state.waiting.is_empty() {
        state.running += 1;
        state.gathering = true;
        state.waiting[0].ticket.set(Turn::Lead);
    }
}

/// How many batches of one queue may run at once: one per core.
fn lanes() -> usize {
    static LANES: OnceLock<usize> = OnceLock::new();
    *LANES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Entries from the front whose rows fit in `max_rows` (always at least one).
fn take_batch(waiting: &mut VecDeque<Entry>, max_rows: usize) -> Vec<Entry> {
    let mut batch = Vec::new();
    let mut rows = 0;
    while let Some(next) = waiting.front() {
        if !batch.is_empty() && rows + next.rows > max_rows {
            break;
        }
        rows += next.rows;
        batch.extend(waiting.pop_front());
    }
    batch
}

/// Runs `batch` as one call, falling back to one call per entry when that fails or its
/// outputs cannot be split by rows.
fn run_batch(batch: Vec<Entry>, run: &Runner) -> Vec<Batched> {
    // A panic inside tract must not leave the queue marked running forever.
    let guarded = |inputs: Vec<RawTensor>, merged: bool| {
        catch_unwind(AssertUnwindSafe(|| run(inputs, merged)))
            .unwrap_or_else(|_| Err(InferenceError::Failed("the inference engine panicked".into())))
    };
    if batch.len() <= 1 {
        let Some(entry) = batch.into_iter().next() else { return Vec::new() };
        return vec![(guarded(entry.inputs, false), entry.rows)];
    }
    let total: usize = batch.iter().map(|e| e.rows).sum();
    if let Ok(outputs) = guarded(concat(&batch, total), true)
        && let Some(split) = split(&outputs, &batch, total)
    {
        return split.into_iter().map(|out| (Ok(out), total)).collect();
    }
    batch.into_iter().map(|e| (guarded(e.inputs, false), e.rows)).collect()
}

/// The entries' inputs stacked along the first dimension.
fn concat(batch: &[Entry], total: usize) -> Vec<RawTensor> {
    let first = &batch[0].inputs;
    (0..first.len()).map(|i| first[i].stacked(total, batch.iter().map(|e| &e.inputs[i].data[..]))).collect()
}

/// Each entry's rows of every output, or `None` when an output's first dimension is not the
/// batch's row count (the model does not keep rows apart).
fn split(outputs: &[RawTensor], batch: &[Entry], total: usize) -> Option<Vec<Vec<RawTensor>>> {
    if outputs.iter().any(|o| o.shape.first() != Some(&total) || o.data.len() % total != 0) {
        return None;
    }
    let mut per_entry: Vec<Vec<RawTensor>> = vec![Vec::with_capacity(outputs.len()); batch.len()];
    for output in outputs {
        let mut offset = 0;
        for (entry, mine) in batch.iter().zip(&mut per_entry) {
            mine.push(output.rows(offset..offset + entry.rows));
            offset += entry.rows;
        }
    }
    Some(per_entry)
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::inference::testing::{Dim, f32_tensor, linear, mlp_batch};
    use crate::inference::{Datatype, RunLimits};

    fn rows(seed: u64, n: usize) -> RawTensor {
        let data: Vec<f32> = (0..n * 100).map(|i| ((i as u64 * 7 + seed * 13) % 17) as f32 / 17.0 - 0.5).collect();
        RawTensor {
            name: "input".into(),
            datatype: Datatype::Fp32,
            shape: vec![n, 100],
            data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn floats(t: &RawTensor) -> Vec<f32> {
        t.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// Concurrent calls (of 1 to 3 rows) come back with their own rows, equal to running
    /// each alone, and at least some of them shared a batch.
    #[test]
    fn concurrent_calls_share_batches_and_get_their_own_rows() {
        let model = mlp_batch(3);
        // A long delay: the first caller waits for the others (or for 16 rows).
        let policy = BatchPolicy { max_batch_size: 16, max_queue_delay: Duration::from_millis(300) };
        let callers = 8;
        let barrier = Barrier::new(callers);
        let results: Vec<(Vec<RawTensor>, Vec<RawTensor>, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..callers)
                .map(|i| {
                    let (model, barrier) = (&model, &barrier);
                    s.spawn(move || {
                        let input = rows(i as u64, 1 + i % 3);
                        let alone = model.run(vec![input.clone()]).unwrap();
                        barrier.wait();
                        let (batched, batch_rows) = model.run_batched(vec![input], policy, RunLimits::NONE);
                        (alone, batched.unwrap(), batch_rows)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (alone, batched, _)) in results.iter().enumerate() {
            assert_eq!(batched[0].shape, vec![1 + i % 3, 10], "caller {i} gets its own rows");
            for (a, b) in floats(&alone[0]).iter().zip(floats(&batched[0])) {
                assert!((a - b).abs() < 1e-5, "caller {i}: {a} alone, {b} batched");
            }
        }
        let largest = results.iter().map(|r| r.2).max().unwrap();
        assert!(largest > 3, "some calls shared a batch (largest batch {largest} rows)");
        assert!(largest <= 16, "no batch exceeds max_batch_size ({largest} rows)");
    }

    /// A call with more rows than `max_batch_size`, or on a model without a batch dimension,
    /// runs alone; a bad input is refused before it could join anyone's batch.
    #[test]
    fn calls_that_cannot_batch_run_alone() {
        let model = mlp_batch(3);
        let policy = BatchPolicy { max_batch_size: 4, max_queue_delay: Duration::from_millis(0) };
        let (out, batch_rows) = model.run_batched(vec![rows(1, 6)], policy, RunLimits::NONE);
        assert_eq!(out.unwrap()[0].shape, vec![6, 10]);
        assert_eq!(batch_rows, 6);
        let mut bad = rows(1, 1);
        bad.data.pop();
        let (out, _) = model.run_batched(vec![bad], policy, RunLimits::NONE);
        assert!(matches!(out, Err(InferenceError::InvalidInput(_))), "{out:?}");

        // `[1, 3]`: no batch dimension, so a long delay must not hold the call.
        let fixed = linear(&[1.0, 2.0, 3.0], 0.5, Dim::Fixed(1));
        let slow = BatchPolicy { max_batch_size: 16, max_queue_delay: Duration::from_secs(60) };
        let started = Instant::now();
        let (out, batch_rows) =
            fixed.run_batched(vec![f32_tensor("x", &[1, 3], &[1.0, 1.0, 1.0])], slow, RunLimits::NONE);
        assert_eq!(floats(&out.unwrap()[0]), vec![6.5]);
        assert_eq!(batch_rows, 1);
        assert!(started.elapsed() < Duration::from_secs(30), "the call did not wait for a batch");
    }
}
