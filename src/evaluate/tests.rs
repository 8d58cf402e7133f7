use super::*;

const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;

/// 40 customers over 120 days: the even ones buy every 5 days, the odd ones once in the first
/// 10 days; plus one customer first seen on day 100.
fn planted_log() -> Vec<Event> {
    let (t0, day) = (T0, DAY);
    let mut events = Vec::new();
    for c in 0..40 {
        let id = format!("c{c:02}");
        if c % 2 == 0 {
            for d in (c % 5..120).step_by(5) {
                events.push(
                    Event::new(&id, t0 + d * day + c, EventKind::Purchase)
                        .with_value(10.0 + c as f64),
                );
            }
        } else {
            events.push(Event::new(&id, t0 + (c % 10) * day, EventKind::Purchase).with_value(1.0));
        }
    }
    // A customer first seen after the cutoff is not scored.
    events.push(Event::new("late", t0 + 100 * day, EventKind::Purchase).with_value(1.0));
    events
}

#[test]
fn default_cutoffs_leave_a_horizon_on_each_side() -> Result<()> {
    let day = 86_400_000i64;
    let c = default_cutoffs(0, 120 * day, 30 * day, 3)?;
    // [30, 90] days: 50%, 67%, 83% → 60, 70, 80 days.
    assert_eq!(c, vec![60 * day, 70 * day, 80 * day]);
    assert!(default_cutoffs(0, 50 * day, 30 * day, 3).is_err());
    assert!(default_cutoffs(0, 120 * day, 30 * day, 0).is_err());
    Ok(())
}

/// A planted log: customers of one group buy every 5 days, the others once in the first ten
/// days (first events spread over days: a tenure equal to the millisecond for everyone would
/// standardise by a tiny deviation and swamp the batch LR when it moves by a horizon).
/// At a cutoff the frequent buyers are exactly the positives, so every ranking baseline that
/// sees the difference is perfect, the counts are right and the training set is labelled
/// from the previous period.
#[test]
fn evaluate_counts_and_labels_a_planted_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (t0, day) = (T0, DAY);
    let events = planted_log();
    let options = EvaluateOptions::default().cutoffs(Cutoffs::At(vec![t0 + 60 * day]));
    let config = Config::new(dir.path().join("s")).horizon_days(30.0);
    let mut calls = 0;
    let report = evaluate(config, events, &options, &mut |_, _| calls += 1)?;
    assert!(calls > 0);
    assert_eq!(report.customers, 41);
    assert_eq!(report.rejected, 0);
    let c = &report.cutoffs[0];
    assert_eq!(c.customers_scored, 40);
    assert_eq!(c.positives, 20);
    assert!(c.horizon_complete);
    assert_eq!(c.scores.neg_recency.auc, Some(1.0));
    assert_eq!(c.scores.frequency.auc, Some(1.0));
    assert_eq!(c.scores.frequency.top_decile_lift, Some(2.0));
    assert_eq!(c.scores.frequency.log_loss, None);
    assert_eq!(c.batch_lr_training.as_of_ms, t0 + 30 * day);
    assert_eq!(c.batch_lr_training.customers, 40);
    assert_eq!(c.batch_lr_training.positives, 20);
    assert!(c.batch_lr_training.fitted);
    assert_eq!(c.scores.batch_lr.auc, Some(1.0));
    let persona = &c.scores.persona;
    assert!(persona.auc.is_some_and(|a| (0.0..=1.0).contains(&a)));
    assert!(persona.brier.is_some_and(|b| (0.0..=1.0).contains(&b)));
    let bins = persona
        .calibration
        .as_ref()
        .expect("a probability has bins");
    assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 40);
    Ok(())
}

#[test]
fn evaluate_refuses_a_used_directory_and_an_empty_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("x"), b"x")?;
    let e = vec![Event::new("a", 1_767_225_600_000, EventKind::Click)];
    let opts = EvaluateOptions::default().cutoffs(Cutoffs::At(vec![0]));
    assert!(evaluate(Config::new(dir.path()), e, &opts, &mut |_, _| {}).is_err());
    let empty = evaluate(
        Config::new(dir.path().join("n")),
        vec![],
        &opts,
        &mut |_, _| {},
    );
    assert!(empty.is_err_and(|e| e.to_string().contains("no valid events")));
    Ok(())
}

/// With truth labels equal to the planted groups, the batch k-means finds them.
#[test]
fn segment_agreement_scores_the_batch_kmeans() {
    let scored: Vec<Scored> = (0..20)
        .map(|i| Scored {
            id: format!("c{i}"),
            features: vec![if i < 10 { 0.0 } else { 10.0 }, 1.0],
            propensity: 0.5,
            segment: Some(u16::from(i < 10)),
            recency_days: 0.0,
            frequency: 0.0,
            monetary: 0.0,
        })
        .collect();
    let truth: HashMap<String, String> = (0..20)
        .map(|i| (format!("c{i}"), if i < 10 { "a" } else { "b" }.to_string()))
        .collect();
    let a = segment_agreement(&scored, &truth, 2, 1);
    assert_eq!(a.labelled, 20);
    assert_eq!(a.online_ari, Some(1.0));
    assert_eq!(a.batch_kmeans_ari, Some(1.0));
}

#[test]
fn vectors_are_written_per_cutoff_with_their_labels() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("vectors");
    let cutoff = T0 + 60 * DAY;
    let options = EvaluateOptions::default()
        .cutoffs(Cutoffs::At(vec![cutoff]))
        .vectors(&out);
    let config = Config::new(dir.path().join("s")).horizon_days(30.0);
    // The directory must exist: nothing is replayed otherwise.
    let err = evaluate(config.clone(), planted_log(), &options, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert!(!dir.path().join("s").exists());

    std::fs::create_dir(&out)?;
    let report = evaluate(config.clone(), planted_log(), &options, &mut |_, _| {})?;
    let names = crate::features::vector::FeatureLayout::new(crate::features::FeatureParams {
        half_life_ms: config.half_life_ms(),
        category_buckets: config.category_buckets,
    })
    .names();
    let read = |name: &str| -> Vec<Vec<String>> {
        let mut r = csv::Reader::from_path(out.join(name)).expect("the file is written");
        let header: Vec<String> = r
            .headers()
            .expect("a header")
            .iter()
            .map(String::from)
            .collect();
        let mut rows = vec![header];
        rows.extend(
            r.records()
                .map(|row| row.expect("a row").iter().map(String::from).collect()),
        );
        rows
    };
    let train = read(&format!("train-{cutoff}.csv"));
    assert_eq!(train[0][..2], ["customer_id", "label"]);
    assert_eq!(train[0][2..], names[..]);
    assert_eq!(train.len() - 1, 40);
    assert_eq!(train[1..].iter().filter(|r| r[1] == "1").count(), 20);
    let score = read(&format!("score-{cutoff}.csv"));
    assert_eq!(score[0][..3], ["customer_id", "label", "persona"]);
    assert_eq!(score[0][3..], names[..]);
    let c = &report.cutoffs[0];
    assert_eq!(score.len() as u64 - 1, c.customers_scored);
    assert_eq!(
        score[1..].iter().filter(|r| r[1] == "1").count() as u64,
        c.positives
    );
    for row in &score[1..] {
        // An even customer buys every 5 days, so is labelled 1; an odd one never buys again.
        let n: u32 = row[0][1..].parse().expect("ids are cNN");
        assert_eq!(row[1], if n % 2 == 0 { "1" } else { "0" }, "{row:?}");
        let p: f64 = row[2].parse().expect("a probability");
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(row.len(), 3 + names.len());
    }
    Ok(())
}
