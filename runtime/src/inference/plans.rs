//! Where optimized plans live, and how much memory they may take together.
//!
//! A model gets one *general* plan when tract can optimize it with its symbols (a batch size
//! `N`) still open: tract resolves them per run, so every batch size shares one plan and one
//! copy of the weights as the plan holds them (packed for the matrix kernels). Only a model
//! that cannot be optimized that way gets a plan per input shapes, and those are what the
//! process-wide [`PlanBudget`] bounds: their bytes are counted together across all models,
//! and the least recently used plan of any model goes when a new one would pass the budget.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, Weak};

use lru::LruCache;
use tract_onnx::prelude::*;

/// Input shapes, one per model input.
pub(super) type Shapes = Vec<Vec<usize>>;

/// What a per-shape plan is for: the input shapes, and the values of the inputs it froze as
/// constants (none for most plans).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PlanKey {
    pub shapes: Shapes,
    pub values: Vec<Vec<i64>>,
}

/// An optimized, runnable plan, and the inputs it froze (which a run does not pass it).
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub runnable: Arc<TypedRunnableModel>,
    pub frozen: Arc<[usize]>,
}

impl Plan {
    /// A plan that takes every input.
    pub(super) fn taking_all(runnable: Arc<TypedRunnableModel>) -> Self {
        Plan { runnable, frozen: Arc::from([]) }
    }
}

/// Per-shape plans a model keeps at most, whatever the budget.
const PLANS_PER_MODEL: usize = 12;

/// What holds per-shape plans, so that the budget can make it drop one.
pub(super) trait Evict: Send + Sync {
    /// Drops the plan for `shapes`, if it is still there.
    fn evict(&self, key: &PlanKey);
}

/// The bytes of per-shape plans across all models, and which was used last.
pub struct PlanBudget {
    limit: u64,
    state: Mutex<BudgetState>,
}

struct BudgetState {
    used: u64,
    /// (model id, shapes) → bytes, least recently used first.
    plans: LruCache<(u64, PlanKey), u64>,
    /// Model id → its plans.
    models: HashMap<u64, Weak<dyn Evict>>,
}

impl std::fmt::Debug for PlanBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanBudget").field("limit", &self.limit).field("used", &self.used()).finish()
    }
}

impl PlanBudget {
    /// A budget of `limit` bytes of per-shape plans.
    pub fn new(limit: u64) -> Arc<Self> {
        let state = BudgetState { used: 0, plans: LruCache::unbounded(), models: HashMap::new() };
        Arc::new(Self { limit, state: Mutex::new(state) })
    }

    /// Bytes of per-shape plans held now.
    pub fn used(&self) -> u64 {
        self.state.lock().expect("budget lock").used
    }

    /// Counts a new plan of `bytes` for `shapes` of model `id`, whose plans `owner` holds;
    /// evicts the least recently used plans (of any model, this one's older ones included)
    /// while the total is past the limit. The newest plan always stays.
    pub(super) fn admit(&self, id: u64, shapes: &PlanKey, bytes: u64, owner: Weak<dyn Evict>) {
        let evicted = {
            let mut state = self.state.lock().expect("budget lock");
            state.models.entry(id).or_insert(owner);
            if let Some(old) = state.plans.put((id, shapes.clone()), bytes) {
                state.used -= old;
            }
            state.used += bytes;
            let mut evicted = Vec::new();
            while state.used > self.limit && state.plans.len() > 1 {
                let Some(((model, shapes), bytes)) = state.plans.pop_lru() else { break };
                state.used -= bytes;
                if let Some(owner) = state.models.get(&model).and_then(Weak::upgrade) {
                    evicted.push((owner, shapes));
                }
            }
            evicted
        };
        // Outside the budget's lock: the owners lock their own plans.
        for (owner, shapes) in evicted {
            owner.evict(&shapes);
        }
    }

    /// Marks the plan for `shapes` of model `id` as just used.
    pub(super) fn touch(&self, id: u64, shapes: &PlanKey) {
        self.state.lock().expect("budget lock").plans.get(&(id, shapes.clone()));
    }

    /// The model dropped its plan for `shapes` itself.
    pub(super) fn forget(&self, id: u64, shapes: &PlanKey) {
        let mut state = self.state.lock().expect("budget lock");
        if let Some(bytes) = state.plans.pop(&(id, shapes.clone())) {
            state.used -= bytes;
        }
    }

    /// Model `id` is gone, and its plans with it.
    pub(super) fn forget_model(&self, id: u64) {
        let mut state = self.state.lock().expect("budget lock");
        state.models.remove(&id);
        let gone: Vec<(u64, PlanKey)> =
            state.plans.iter().filter(|((m, _), _)| *m == id).map(|(k, _)| k.clone()).collect();
        for key in gone {
            if let Some(bytes) = state.plans.pop(&key) {
                state.used -= bytes;
            }
        }
    }
}

/// One model's per-shape plans.
pub(super) struct ShapePlans {
    plans: Mutex<LruCache<PlanKey, Plan>>,
}

impl ShapePlans {
    pub(super) fn new() -> Arc<Self> {
        let cap = NonZeroUsize::new(PLANS_PER_MODEL).expect("non-zero");
        Arc::new(Self { plans: Mutex::new(LruCache::new(cap)) })
    }

    pub(super) fn get(&self, shapes: &PlanKey) -> Option<Plan> {
        self.plans.lock().expect("plans lock").get(shapes).cloned()
    }

    /// Keeps `plan`; returns the shapes of a plan it pushed out, if any.
    pub(super) fn put(&self, shapes: PlanKey, plan: Plan) -> Option<PlanKey> {
        let mut plans = self.plans.lock().expect("plans lock");
        if plans.contains(&shapes) {
            plans.put(shapes, plan);
            return None;
        }
        plans.push(shapes, plan).map(|(old, _)| old)
    }

    pub(super) fn len(&self) -> usize {
        self.plans.lock().expect("plans lock").len()
    }
}

impl Evict for ShapePlans {
    fn evict(&self, shapes: &PlanKey) {
        self.plans.lock().expect("plans lock").pop(shapes);
    }
}

/// What a plan holds: its constants (the weights as the plan keeps them, packed included).
pub(super) fn plan_bytes(plan: &TypedRunnableModel) -> u64 {
    use tract_onnx::tract_core::ops::konst::Const;
    plan.model()
        .nodes()
        .iter()
        .filter_map(|node| node.op_as::<Const>())
        .map(|konst| match konst.exotic_fact() {
            Some(fact) => fact.mem_size().as_i64().unwrap_or(0).max(0) as u64,
            None => (konst.val().len() * konst.val().datum_type().size_of()) as u64,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the budget evicted.
    #[derive(Default)]
    struct Owner(Mutex<Vec<PlanKey>>);

    impl Evict for Owner {
        fn evict(&self, shapes: &PlanKey) {
            self.0.lock().unwrap().push(shapes.clone());
        }
    }

    fn shapes(n: usize) -> PlanKey {
        PlanKey { shapes: vec![vec![n, 100]], values: vec![] }
    }

    #[test]
    fn the_least_recently_used_plan_of_any_model_goes_first() {
        let budget = PlanBudget::new(300);
        let (a, b) = (Arc::new(Owner::default()), Arc::new(Owner::default()));
        let (wa, wb): (Weak<dyn Evict>, Weak<dyn Evict>) =
            (Arc::downgrade(&a) as Weak<dyn Evict>, Arc::downgrade(&b) as Weak<dyn Evict>);
        budget.admit(1, &shapes(1), 100, wa.clone());
        budget.admit(2, &shapes(1), 100, wb.clone());
        budget.admit(1, &shapes(2), 100, wa.clone());
        assert_eq!(budget.used(), 300);
        // Model 1's first plan is used again; model 2's is now the oldest.
        budget.touch(1, &shapes(1));
        budget.admit(1, &shapes(3), 100, wa.clone());
        assert_eq!(budget.used(), 300);
        assert_eq!(*b.0.lock().unwrap(), vec![shapes(1)]);
        assert!(a.0.lock().unwrap().is_empty());
        // A plan larger than the whole budget stays alone.
        budget.admit(2, &shapes(9), 1000, wb.clone());
        assert_eq!(budget.used(), 1000);
        assert_eq!(a.0.lock().unwrap().len(), 3);
        // Models that go give back what their plans held.
        budget.forget_model(2);
        assert_eq!(budget.used(), 0);
    }

    /// A model with a symbolic batch size keeps one plan whatever batch sizes it is called
    /// with (it kept one per size before, each with its own copy of the packed weights), and
    /// its answers are those of the rows run alone.
    #[test]
    fn one_plan_serves_every_batch_size() {
        use crate::inference::testing::{f32_tensor, mlp_batch};
        let model = mlp_batch(7);
        assert_eq!(model.plan_count(), 1);
        let row: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let alone = model.run(vec![f32_tensor("input", &[1, 100], &row)]).unwrap();
        for n in 1..=12 {
            let rows: Vec<f32> = row.iter().copied().cycle().take(n * 100).collect();
            let out = model.run(vec![f32_tensor("input", &[n, 100], &rows)]).unwrap();
            assert_eq!(out[0].shape, vec![n, 10]);
            assert_eq!(out[0].data[..40], alone[0].data[..], "batch of {n}");
        }
        assert_eq!(model.plan_count(), 1);
    }
}
