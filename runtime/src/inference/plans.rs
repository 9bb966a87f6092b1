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

use super::typing::Strategy;
use crate::metrics::ModelSeries;

/// Input shapes, one per model input.
pub(super) type Shapes = Vec<Vec<usize>>;

/// What a per-shape plan is for: the input shapes, and the inputs it froze as constants
/// with their bytes (none for most plans).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PlanKey {
    pub shapes: Shapes,
    pub frozen: Vec<(usize, Vec<u8>)>,
}

/// An optimized, runnable plan, the inputs it froze (which a run does not pass it), and for a
/// per-shape plan how it was built, what it is kept under and its largest step.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub runnable: Arc<TypedRunnableModel>,
    pub frozen: Arc<[usize]>,
    pub built: Option<(Strategy, Arc<PlanKey>)>,
    pub working_set: Option<Arc<(u64, String)>>,
}

impl Plan {
    /// The general plan: every input, every shape.
    pub(super) fn general(runnable: Arc<TypedRunnableModel>) -> Self {
        Plan { runnable, frozen: Arc::from([]), built: None, working_set: None }
    }
}

/// Per-shape plans a model keeps at most, whatever the budget.
const PLANS_PER_MODEL: usize = 12;

/// What holds per-shape plans, so that the budget can make it drop one.
pub(super) trait Evict: Send + Sync {
    /// Drops the plan for `key`, if it is still there.
    fn evict(&self, key: &PlanKey);
}

/// Whose per-shape plans a model's are, and what they may hold: the model's own, its
/// tenant's all together, and every model's in the [`PlanBudget`].
#[derive(Clone, Debug)]
pub struct PlanAccount {
    /// The process-wide budget.
    pub budget: Arc<PlanBudget>,
    /// The tenant owning the model.
    pub tenant: String,
    /// What the tenant's per-shape plans may hold together.
    pub tenant_bytes: u64,
    /// What this model's per-shape plans may hold.
    pub model_bytes: u64,
    /// Where the model's plan builds and evictions are counted.
    pub series: ModelSeries,
}

impl PlanAccount {
    /// An account with no bound of its own, in a budget of its own (analysis, tests).
    pub fn unbounded() -> Self {
        PlanAccount {
            budget: PlanBudget::new(u64::MAX),
            tenant: String::new(),
            tenant_bytes: u64::MAX,
            model_bytes: u64::MAX,
            series: ModelSeries::default(),
        }
    }

    /// The account of a model of `tenant` whose tensors may hold `max_bytes` each (the
    /// tenant's `max_memory_mb`): the tenant's plans may hold as much, one model's half. Its
    /// plan builds and evictions are counted in `series`.
    pub fn for_tenant(budget: Arc<PlanBudget>, tenant: &str, max_bytes: u64, series: ModelSeries) -> Self {
        PlanAccount { budget, tenant: tenant.to_string(), tenant_bytes: max_bytes, model_bytes: max_bytes / 2, series }
    }
}

/// The bytes of per-shape plans across all models, per tenant and per model, and which was
/// used last. A new plan pushes out the least recently used plans of its model while the model
/// is past its bound, then of its tenant, then of any model while the total is past the
/// budget's limit. The newest plan always stays.
pub struct PlanBudget {
    limit: u64,
    state: Mutex<BudgetState>,
}

/// Bytes held and allowed.
#[derive(Clone, Copy, Debug, Default)]
struct Bound {
    used: u64,
    limit: u64,
}

struct ModelAccount {
    owner: Weak<dyn Evict>,
    tenant: Arc<str>,
    bytes: Bound,
    series: ModelSeries,
}

struct BudgetState {
    used: u64,
    evictions: u64,
    /// (model id, key) → bytes, least recently used last.
    plans: LruCache<(u64, PlanKey), u64>,
    models: HashMap<u64, ModelAccount>,
    tenants: HashMap<Arc<str>, Bound>,
}

impl std::fmt::Debug for PlanBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanBudget").field("limit", &self.limit).field("used", &self.used()).finish()
    }
}

impl BudgetState {
    /// Removes one plan from every count; returns its owner, if the model is still there.
    fn remove(&mut self, model: u64, key: &PlanKey) -> Option<Arc<dyn Evict>> {
        let bytes = self.plans.pop(&(model, key.clone()))?;
        self.used -= bytes;
        let account = self.models.get_mut(&model)?;
        account.bytes.used -= bytes;
        if let Some(tenant) = self.tenants.get_mut(&account.tenant) {
            tenant.used -= bytes;
        }
        account.owner.upgrade()
    }

    /// The least recently used plan for which `matches(model)` holds, other than `keep`.
    fn oldest(&self, keep: &(u64, PlanKey), matches: impl Fn(u64) -> bool) -> Option<(u64, PlanKey)> {
        self.plans.iter().rev().map(|(k, _)| k).find(|k| *k != keep && matches(k.0)).cloned()
    }
}

impl PlanBudget {
    /// A budget of `limit` bytes of per-shape plans.
    pub fn new(limit: u64) -> Arc<Self> {
        let state = BudgetState {
            used: 0,
            evictions: 0,
            plans: LruCache::unbounded(),
            models: HashMap::new(),
            tenants: HashMap::new(),
        };
        Arc::new(Self { limit, state: Mutex::new(state) })
    }

    /// Bytes of per-shape plans held now.
    pub fn used(&self) -> u64 {
        self.state.lock().expect("budget lock").used
    }

    /// Plans pushed out by a bound since the start.
    pub fn evictions(&self) -> u64 {
        self.state.lock().expect("budget lock").evictions
    }

    /// Registers model `id`, whose plans `owner` holds, under `account`'s bounds (the tenant's
    /// bound is the latest one given).
    pub(super) fn register(&self, id: u64, account: &PlanAccount, owner: Weak<dyn Evict>) {
        let mut state = self.state.lock().expect("budget lock");
        let tenant: Arc<str> = Arc::from(account.tenant.as_str());
        state.tenants.entry(tenant.clone()).or_default().limit = account.tenant_bytes;
        let bytes = Bound { used: 0, limit: account.model_bytes };
        state.models.insert(id, ModelAccount { owner, tenant, bytes, series: account.series.clone() });
    }

    /// Counts a new plan of `bytes` for `key` of model `id` and evicts what the bounds
    /// require (see the type's docs).
    pub(super) fn admit(&self, id: u64, key: &PlanKey, bytes: u64) {
        let evicted = {
            let mut state = self.state.lock().expect("budget lock");
            let Some(account) = state.models.get_mut(&id) else { return };
            account.bytes.used += bytes;
            let tenant = account.tenant.clone();
            if let Some(bound) = state.tenants.get_mut(&tenant) {
                bound.used += bytes;
            }
            state.used += bytes;
            if let Some(old) = state.plans.put((id, key.clone()), bytes) {
                // The same key again: only the new bytes count.
                state.used -= old;
                if let Some(account) = state.models.get_mut(&id) {
                    account.bytes.used -= old;
                }
                if let Some(bound) = state.tenants.get_mut(&tenant) {
                    bound.used -= old;
                }
            }
            let keep = (id, key.clone());
            let mut evicted = Vec::new();
            loop {
                let model_over = state.models.get(&id).is_some_and(|m| m.bytes.used > m.bytes.limit);
                let tenant_over = state.tenants.get(&tenant).is_some_and(|t| t.used > t.limit);
                let of_tenant = |m: u64, tenant: &str| state.models.get(&m).is_some_and(|a| &*a.tenant == tenant);
                let over = |m: u64| {
                    let tenant = state.models.get(&m).map(|a| a.tenant.clone());
                    tenant.and_then(|t| state.tenants.get(&t)).is_some_and(|t| t.used > t.limit)
                };
                // The model's own oldest plan; else (it has no other) its tenant's; else, past
                // the process's limit, a tenant over its own bound pays first.
                let victim = model_over
                    .then(|| state.oldest(&keep, |m| m == id))
                    .flatten()
                    .or_else(|| tenant_over.then(|| state.oldest(&keep, |m| of_tenant(m, &tenant))).flatten())
                    .or_else(|| {
                        (state.used > self.limit)
                            .then(|| state.oldest(&keep, over).or_else(|| state.oldest(&keep, |_| true)))
                            .flatten()
                    });
                let Some((model, key)) = victim else { break };
                state.evictions += 1;
                if let Some(account) = state.models.get(&model) {
                    account.series.plan_evicted();
                }
                if let Some(owner) = state.remove(model, &key) {
                    evicted.push((owner, key));
                }
            }
            evicted
        };
        // Outside the budget's lock: the owners lock their own plans.
        for (owner, key) in evicted {
            owner.evict(&key);
        }
    }

    /// Bytes of model `id`'s per-shape plans held now.
    pub(super) fn model_used(&self, id: u64) -> u64 {
        self.state.lock().expect("budget lock").models.get(&id).map_or(0, |m| m.bytes.used)
    }

    /// Marks the plan for `key` of model `id` as just used.
    pub(super) fn touch(&self, id: u64, key: &PlanKey) {
        self.state.lock().expect("budget lock").plans.get(&(id, key.clone()));
    }

    /// The model dropped its plan for `key` itself.
    pub(super) fn forget(&self, id: u64, key: &PlanKey) {
        self.state.lock().expect("budget lock").remove(id, key);
    }

    /// Model `id` is gone, and its plans with it.
    pub(super) fn forget_model(&self, id: u64) {
        let mut state = self.state.lock().expect("budget lock");
        let gone: Vec<PlanKey> =
            state.plans.iter().filter(|((m, _), _)| *m == id).map(|((_, k), _)| k.clone()).collect();
        for key in gone {
            state.remove(id, &key);
        }
        state.models.remove(&id);
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

/// An estimate of a plan's own bytes beside its constants, per node.
const NODE_BYTES: u64 = 1 << 10;

/// What a plan holds, estimated: its constants (the weights as the plan keeps them, packed
/// included), and at least the model's own `weights`, since an optimized matrix product keeps
/// its packed weights inside the op rather than as a constant; plus its nodes.
pub(super) fn plan_bytes(plan: &TypedRunnableModel, weights: u64) -> u64 {
    use tract_onnx::tract_core::ops::konst::Const;
    let nodes = plan.model().nodes().len() as u64 * NODE_BYTES;
    let constants = plan
        .model()
        .nodes()
        .iter()
        .filter_map(|node| node.op_as::<Const>())
        .map(|konst| match konst.exotic_fact() {
            Some(fact) => fact.mem_size().as_i64().unwrap_or(0).max(0) as u64,
            None => (konst.val().len() * konst.val().datum_type().size_of()) as u64,
        })
        .sum::<u64>();
    nodes + constants.max(weights)
}

/// The bytes of the constants (the weights) of a parsed model.
pub(super) fn weight_bytes(model: &InferenceModel) -> u64 {
    use tract_onnx::tract_hir::ops::konst::Const;
    model
        .nodes()
        .iter()
        .filter_map(|node| node.op_as::<Const>())
        .map(|konst| (konst.val().len() * konst.val().datum_type().size_of()) as u64)
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
        PlanKey { shapes: vec![vec![n, 100]], frozen: vec![] }
    }

    fn account(budget: &Arc<PlanBudget>, tenant: &str, tenant_bytes: u64, model_bytes: u64) -> PlanAccount {
        PlanAccount {
            budget: budget.clone(),
            tenant: tenant.into(),
            tenant_bytes,
            model_bytes,
            series: Default::default(),
        }
    }

    fn owner(o: &Arc<Owner>) -> Weak<dyn Evict> {
        Arc::downgrade(o) as Weak<dyn Evict>
    }

    #[test]
    fn the_least_recently_used_plan_of_any_model_goes_first() {
        let budget = PlanBudget::new(300);
        let (a, b) = (Arc::new(Owner::default()), Arc::new(Owner::default()));
        budget.register(1, &account(&budget, "acme", u64::MAX, u64::MAX), owner(&a));
        budget.register(2, &account(&budget, "bravo", u64::MAX, u64::MAX), owner(&b));
        budget.admit(1, &shapes(1), 100);
        budget.admit(2, &shapes(1), 100);
        budget.admit(1, &shapes(2), 100);
        assert_eq!(budget.used(), 300);
        // Model 1's first plan is used again; model 2's is now the oldest.
        budget.touch(1, &shapes(1));
        budget.admit(1, &shapes(3), 100);
        assert_eq!(budget.used(), 300);
        assert_eq!(*b.0.lock().unwrap(), vec![shapes(1)]);
        assert!(a.0.lock().unwrap().is_empty());
        // A plan larger than the whole budget stays alone.
        budget.admit(2, &shapes(9), 1000);
        assert_eq!(budget.used(), 1000);
        assert_eq!(a.0.lock().unwrap().len(), 3);
        assert_eq!(budget.evictions(), 4);
        // Models that go give back what their plans held.
        budget.forget_model(2);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_model_and_a_tenant_are_bounded_before_the_budget() {
        let budget = PlanBudget::new(u64::MAX);
        let (a1, a2, b) = (Arc::new(Owner::default()), Arc::new(Owner::default()), Arc::new(Owner::default()));
        // Tenant acme: 200 bytes of plans, 150 per model. Tenant bravo: unbounded.
        budget.register(1, &account(&budget, "acme", 200, 150), owner(&a1));
        budget.register(2, &account(&budget, "acme", 200, 150), owner(&a2));
        budget.register(3, &account(&budget, "bravo", u64::MAX, u64::MAX), owner(&b));
        budget.admit(3, &shapes(1), 100);
        budget.admit(1, &shapes(1), 100);
        // Model 1 past its 150: its own older plan goes, not bravo's older one.
        budget.admit(1, &shapes(2), 100);
        assert_eq!(*a1.0.lock().unwrap(), vec![shapes(1)]);
        budget.admit(2, &shapes(1), 100);
        // acme past its 200 with model 2's second plan: acme's oldest (model 1's) goes.
        budget.admit(2, &shapes(2), 40);
        assert_eq!(a1.0.lock().unwrap().len(), 2);
        assert!(b.0.lock().unwrap().is_empty(), "another tenant's plans are never pushed out by acme");
        assert_eq!(budget.used(), 100 + 100 + 40);
        assert_eq!(budget.evictions(), 2);
    }

    #[test]
    fn a_model_past_its_bound_alone_still_counts_for_its_tenant() {
        let budget = PlanBudget::new(u64::MAX);
        let (a1, a2) = (Arc::new(Owner::default()), Arc::new(Owner::default()));
        // Each plan of either model is larger than its model's bound: a model keeps one plan,
        // and the tenant's bound still holds across the two models.
        budget.register(1, &account(&budget, "acme", 150, 50), owner(&a1));
        budget.register(2, &account(&budget, "acme", 150, 50), owner(&a2));
        budget.admit(1, &shapes(1), 100);
        budget.admit(2, &shapes(1), 100);
        assert_eq!(*a1.0.lock().unwrap(), vec![shapes(1)], "acme past 150: model 1's plan goes");
        assert_eq!(budget.used(), 100);
    }

    #[test]
    fn past_the_process_limit_a_tenant_over_its_own_bound_pays_first() {
        let budget = PlanBudget::new(250);
        let (a, b) = (Arc::new(Owner::default()), Arc::new(Owner::default()));
        budget.register(1, &account(&budget, "bravo", u64::MAX, u64::MAX), owner(&b));
        budget.register(2, &account(&budget, "acme", 100, u64::MAX), owner(&a));
        budget.admit(1, &shapes(1), 100);
        // acme's plan alone is past acme's bound of 100, and stays: it is the newest.
        budget.admit(2, &shapes(1), 120);
        budget.admit(2, &shapes(2), 120);
        assert_eq!(*a.0.lock().unwrap(), vec![shapes(1)]);
        // bravo's older plan is not what the process's limit takes.
        budget.admit(1, &shapes(2), 100);
        assert!(b.0.lock().unwrap().is_empty(), "{:?}", b.0.lock().unwrap());
        assert_eq!(*a.0.lock().unwrap(), vec![shapes(1), shapes(2)]);
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
