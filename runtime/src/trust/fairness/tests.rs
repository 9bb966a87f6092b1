use super::*;
use crate::inference::testing::{self, Dim, f32_tensor};

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// The hand-made dataset: (group, decision, label) per row.
const ROWS: [(&str, bool, bool); 14] = [
    ("a", true, true),
    ("a", true, true),
    ("a", true, false),
    ("a", false, true),
    ("a", false, false),
    ("b", true, true),
    ("b", false, true),
    ("b", false, false),
    ("b", false, false),
    ("b", false, true),
    ("c", true, true),
    ("c", true, false),
    ("c", false, false),
    ("c", true, true),
];

fn dataset() -> (Vec<bool>, Vec<String>, Vec<bool>) {
    (
        ROWS.iter().map(|r| r.1).collect(),
        ROWS.iter().map(|r| r.0.to_string()).collect(),
        ROWS.iter().map(|r| r.2).collect(),
    )
}

/// Reference computation, straight from the definitions: rates by filtering the rows.
struct Reference {
    sr: f64,
    tpr: Option<f64>,
    fpr: Option<f64>,
}

fn reference(group: &str) -> Reference {
    let rows: Vec<_> = ROWS.iter().filter(|r| r.0 == group).collect();
    let rate = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
    let positives = rows.iter().filter(|r| r.2).count();
    let negatives = rows.len() - positives;
    Reference {
        sr: rows.iter().filter(|r| r.1).count() as f64 / rows.len() as f64,
        tpr: rate(rows.iter().filter(|r| r.2 && r.1).count(), positives),
        fpr: rate(rows.iter().filter(|r| !r.2 && r.1).count(), negatives),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn figures_match_the_definitions() {
    let (decisions, groups, labels) = dataset();
    let report = audit(&decisions, &groups, Some(&labels), None).unwrap();
    // Hand-computed: SR a = 3/5, b = 1/5, c = 3/4; TPR a = 2/3, b = 1/3, c = 1; FPR a = 1/2, b = 0, c = 1/2.
    assert_eq!(report.reference_group, "c", "the highest selection rate");
    for (name, sr, tpr, fpr, count) in
        [("a", 0.6, 2.0 / 3.0, 0.5, 5), ("b", 0.2, 1.0 / 3.0, 0.0, 5), ("c", 0.75, 1.0, 0.5, 4)]
    {
        let g = &report.groups[name];
        let r = reference(name);
        assert_eq!(g.count, count);
        assert!(close(g.selection_rate, sr) && close(r.sr, sr), "{name} sr");
        assert!(close(g.tpr.flatten().unwrap(), tpr) && close(r.tpr.unwrap(), tpr), "{name} tpr");
        assert!(close(g.fpr.flatten().unwrap(), fpr) && close(r.fpr.unwrap(), fpr), "{name} fpr");
    }
    // Worst group b against c.
    let (b, c) = (reference("b"), reference("c"));
    assert!(close(report.statistical_parity_difference, b.sr - c.sr));
    assert!(close(report.statistical_parity_difference, -0.55));
    assert!(close(report.disparate_impact_ratio.unwrap(), b.sr / c.sr));
    let eod = report.equal_opportunity_difference.flatten().unwrap();
    assert!(close(eod, b.tpr.unwrap() - c.tpr.unwrap()) && close(eod, -2.0 / 3.0));
    let aod = report.average_odds_difference.flatten().unwrap();
    let want = ((b.fpr.unwrap() - c.fpr.unwrap()) + (b.tpr.unwrap() - c.tpr.unwrap())) / 2.0;
    assert!(close(aod, want) && close(aod, -7.0 / 12.0), "{aod}");
    assert!(!report.passes_four_fifths_rule, "0.2 < 0.8 × 0.75");

    // With "a" as the reference: b is worse for SPD, DI and AOD; b and c tie on |EOD| (negative wins).
    let report = audit(&decisions, &groups, Some(&labels), Some("a")).unwrap();
    assert_eq!(report.reference_group, "a");
    assert!(close(report.statistical_parity_difference, -0.4));
    assert!(close(report.disparate_impact_ratio.unwrap(), 1.0 / 3.0), "1/3 is farther from 1 than 1.25");
    assert!(close(report.equal_opportunity_difference.flatten().unwrap(), -1.0 / 3.0));
    assert!(close(report.average_odds_difference.flatten().unwrap(), -5.0 / 12.0));
    assert!(!report.passes_four_fifths_rule, "independent of the reference");
}

#[test]
fn the_json_is_the_contracts() {
    let (decisions, groups, labels) = dataset();
    let without = serde_json::to_value(audit(&decisions, &groups, None, None).unwrap()).unwrap();
    let keys: Vec<&String> = without.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "disparate_impact_ratio",
            "groups",
            "passes_four_fifths_rule",
            "reference_group",
            "statistical_parity_difference"
        ]
    );
    assert_eq!(without["groups"]["a"], serde_json::json!({"count": 5, "selection_rate": 0.6}));

    // Group "b" has no negative label, "c" no positive one: nulls, not omissions.
    let labels_b: Vec<bool> = groups
        .iter()
        .zip(&labels)
        .map(|(g, &l)| {
            if g == "b" {
                true
            } else if g == "c" {
                false
            } else {
                l
            }
        })
        .collect();
    let report = audit(&decisions, &groups, Some(&labels_b), None).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["groups"]["b"]["fpr"], serde_json::Value::Null);
    assert!(json["groups"]["b"].as_object().unwrap().contains_key("fpr"));
    assert_eq!(json["groups"]["c"]["tpr"], serde_json::Value::Null);
    // The reference c has no TPR: every EOD and AOD is undefined.
    assert_eq!(json["equal_opportunity_difference"], serde_json::Value::Null);
    assert!(json.as_object().unwrap().contains_key("average_odds_difference"));
    // Round trip, as the stored latest audit.
    let back: FairnessReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
    let back: FairnessReport = serde_json::from_value(without.clone()).unwrap();
    assert_eq!(back.equal_opportunity_difference, None);
    assert_eq!(serde_json::to_value(back).unwrap(), without);
}

#[test]
fn edge_cases_are_defined() {
    // Nobody selected: parity, ratio 1, passes.
    let report = audit(&[false; 5], &strings(&["x", "x", "x", "y", "y"]), None, None).unwrap();
    assert_eq!(report.reference_group, "x", "ties: the larger group");
    assert_eq!(report.statistical_parity_difference, 0.0);
    assert_eq!(report.disparate_impact_ratio, Some(1.0));
    assert!(report.passes_four_fifths_rule);
    // A reference never selected against a selected group: unbounded ratio → null.
    let report = audit(&[false, true], &strings(&["x", "y"]), None, Some("x")).unwrap();
    assert_eq!(report.disparate_impact_ratio, None);
    assert_eq!(report.statistical_parity_difference, 1.0);
    assert!(!report.passes_four_fifths_rule);
    assert!(serde_json::to_value(&report).unwrap()["disparate_impact_ratio"].is_null());
    // Exactly four fifths passes.
    let report = audit(
        &[true, true, true, true, false, true, true, true, true, true],
        &strings(&["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(report.disparate_impact_ratio, Some(0.8));
    assert!(report.passes_four_fifths_rule);
    // One group: nothing to compare.
    let report = audit(&[true, false], &strings(&["only", "only"]), Some(&[true, false]), None).unwrap();
    assert_eq!((report.statistical_parity_difference, report.disparate_impact_ratio), (0.0, Some(1.0)));
    assert_eq!(report.equal_opportunity_difference, Some(Some(0.0)));
    assert_eq!(report.average_odds_difference, Some(Some(0.0)));
    // A group of zero selections against a selected reference: ratio 0.
    let report = audit(&[true, false, false], &strings(&["p", "q", "q"]), None, None).unwrap();
    assert_eq!((report.reference_group.as_str(), report.disparate_impact_ratio), ("p", Some(0.0)));
    // Errors.
    let err = |r: Result<FairnessReport, TrustError>, needle: &str| match r {
        Err(TrustError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("{other:?}"),
    };
    err(audit(&[], &[], None, None), "at least one row");
    err(audit(&[true], &strings(&["a", "b"]), None, None), "groups has 2 values for 1 rows");
    err(audit(&[true], &strings(&["a"]), Some(&[true, false]), None), "labels has 2 values");
    err(audit(&[true], &strings(&["a"]), None, Some("z")), "reference_group \"z\" does not occur");
}

#[test]
fn requests_deserialize_and_audit() {
    use maas_types::FairnessRequest;
    let request = |value: serde_json::Value| serde_json::from_value::<FairnessRequest>(value);
    let p = request(serde_json::json!({
        "inputs": [], "groups": ["f", 1, true, 2.5], "labels": [0, 1, true, false],
        "favorable": {"output": "y", "threshold": 0.5}, "reference_group": 1
    }))
    .unwrap();
    assert_eq!(p.groups, strings(&["f", "1", "true", "2.5"]));
    assert_eq!(p.labels, Some(vec![false, true, true, false]));
    assert_eq!(p.favorable, Favorable { output: Some("y".into()), rule: FavorableRule::Threshold(0.5) });
    assert_eq!(p.reference_group.as_deref(), Some("1"));
    let report =
        audit(&[true, false, true, true], &p.groups, p.labels.as_deref(), p.reference_group.as_deref()).unwrap();
    assert_eq!(report.reference_group, "1");
    let p = request(serde_json::json!({"inputs": [], "groups": ["a"], "favorable": {"class": 2}})).unwrap();
    assert_eq!((p.labels, p.reference_group, p.favorable.rule), (None, None, FavorableRule::Class(2)));
    for bad in [
        serde_json::json!({"inputs": [], "groups": ["a"], "favorable": {"class": 1, "threshold": 0.5}}),
        serde_json::json!({"inputs": [], "groups": ["a"], "favorable": {}}),
        serde_json::json!({"inputs": [], "groups": ["a"], "favorable": {"class": -1}}),
        serde_json::json!({"inputs": [], "groups": ["a"], "favorable": {"clas": 1}}),
        serde_json::json!({"inputs": [], "groups": ["a"], "labels": [2], "favorable": {"class": 1}}),
        serde_json::json!({"inputs": [], "groups": [null], "favorable": {"class": 1}}),
        serde_json::json!({"inputs": [], "favorable": {"class": 1}}),
    ] {
        assert!(request(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn decisions_come_from_the_rule() {
    let scores = f32_tensor("p", &[3, 2], &[0.9, 0.1, 0.3, 0.7, 0.5, 0.5]);
    assert_eq!(decide(&scores, &FavorableRule::Class(1)).unwrap(), [false, true, false], "ties: the first class");
    assert_eq!(decide(&scores, &FavorableRule::Threshold(0.5)).unwrap(), [false, true, true], "element 1 ≥ 0.5");
    let single = f32_tensor("p", &[3, 1], &[0.2, 0.6, f32::NAN]);
    assert_eq!(decide(&single, &FavorableRule::Threshold(0.5)).unwrap(), [false, true, false]);
    let wide = f32_tensor("p", &[1, 10], &[0.0; 10]);
    assert!(matches!(decide(&wide, &FavorableRule::Threshold(0.5)), Err(TrustError::InvalidRequest(_))));
    assert!(matches!(decide(&scores, &FavorableRule::Class(2)), Err(TrustError::InvalidRequest(_))));
}

#[test]
fn the_model_decides_each_row() {
    let x = [1.0f32, 0.0, 0.0, 1.0, 2.0, 2.0];
    let favorable = Favorable { output: None, rule: FavorableRule::Threshold(1.5) };
    // y = x·[1, 2] → 1, 2, 6.
    for batch in [Dim::N, Dim::Fixed(1)] {
        let model = testing::linear(&[1.0, 2.0], 0.0, batch);
        let d =
            favorable_decisions(&model, vec![f32_tensor("x", &[3, 2], &x)], &favorable, &Limits::default()).unwrap();
        assert_eq!(d.favorable, [false, true, true]);
        assert_eq!(d.rows_evaluated, 3);
        assert_eq!(d.model_runs, if matches!(batch, Dim::N) { 1 } else { 3 });
    }
    let model = testing::linear(&[1.0, 2.0], 0.0, Dim::N);
    let limits = Limits { max_audit_rows: 2, ..Limits::default() };
    let r = favorable_decisions(&model, vec![f32_tensor("x", &[3, 2], &x)], &favorable, &limits);
    assert!(matches!(r, Err(TrustError::InvalidRequest(ref m)) if m.contains("limit of 2")), "{r:?}");
    let named = Favorable { output: Some("z".into()), ..favorable.clone() };
    let r = favorable_decisions(&model, vec![f32_tensor("x", &[3, 2], &x)], &named, &Limits::default());
    assert!(matches!(r, Err(TrustError::InvalidRequest(ref m)) if m.contains("no output \"z\"")), "{r:?}");
    let model = testing::two_inputs(&[1.0], &[1.0]);
    let r = favorable_decisions(
        &model,
        vec![f32_tensor("a", &[2, 1], &[1.0, 2.0]), f32_tensor("c", &[3, 1], &[1.0, 2.0, 3.0])],
        &favorable,
        &Limits::default(),
    );
    assert!(matches!(r, Err(TrustError::InvalidRequest(ref m)) if m.contains("same number of rows")), "{r:?}");
}
