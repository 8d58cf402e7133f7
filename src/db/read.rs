//! Reads: profiles (now, at a version, as of a time), the model and its segments, scores,
//! history, nearest segments and strategy recommendations, store statistics.

use super::*;
use crate::error::{Error, Result};
use crate::event::validate_customer_id;
use crate::features::consent::{self, Consent};
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::pipeline::WriteStats;
use crate::query::recommend::{self, Catalogue, RecommendOptions, Suggestion};
use crate::query::{
    history, score, segments, strategy, HistoryItem, ModelInfo, Profile, Recommendation, Score,
    SegmentDistance, SegmentInfo,
};
use crate::storage::record::HistoryError;
#[cfg(any(feature = "cli", feature = "testing"))]
use crate::storage::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Db {
    /// A customer's profile as of the current watermark, or `None` if unknown.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the customer if their record does not decode (other customers
    /// are unaffected); [`Error::InvalidEvent`] for an invalid customer id.
    pub fn profile(&self, customer_id: &str) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(record) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        Ok(Some(Profile::evaluate(
            customer_id,
            record,
            &model,
            &self.inner.layout,
            self.inner.config.consent_defaults,
        )))
    }

    /// A customer's profile at a past `version` (the last `history_versions` are kept).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if that version was pruned or does not exist yet (the message
    /// names the readable range); [`Error::Corruption`] as for [`Db::profile`].
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// db.ingest(Event::new("c", t, EventKind::Click))?;
    /// db.ingest(Event::new("c", t + 1, EventKind::Click))?;
    /// assert_eq!(db.profile_at_version("c", 1)?.expect("kept").event_count, 1);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn profile_at_version(&self, customer_id: &str, version: u64) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(record) = self.inner.store.profile(customer_id)? else {
            return Ok(None);
        };
        let now = Consent::of(&record.state, self.inner.config.consent_defaults);
        match record.state_at(version, self.inner.store.params()) {
            Ok((state, _, _)) => Ok(Some(Profile::of_state(
                customer_id,
                version,
                state,
                &self.model(),
                &self.inner.layout,
                None,
                now,
            ))),
            Err(HistoryError::Pruned { oldest }) => Err(Error::invalid_argument(
                "version",
                format!(
                    "{version} of {customer_id:?} was pruned; versions {oldest}..={} are kept",
                    record.version
                ),
            )),
            Err(HistoryError::Future { current }) => Err(Error::invalid_argument(
                "version",
                format!("{version} of {customer_id:?} does not exist; the latest is {current}"),
            )),
        }
    }

    /// The profile as it was at event time `timestamp_ms`: the latest retained version whose
    /// events all happened at or before it, evaluated as of that time. `None` if the customer
    /// is unknown or had no events by then.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if that moment is older than the retained history.
    pub fn profile_as_of(&self, customer_id: &str, timestamp_ms: i64) -> Result<Option<Profile>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile(customer_id)? else {
            return Ok(None);
        };
        let params = self.inner.store.params();
        let now = Consent::of(&rec.state, self.inner.config.consent_defaults);
        let oldest = rec.oldest_version();
        for v in (oldest..=rec.version).rev() {
            let Ok((state, _, _)) = rec.state_at(v, params) else {
                continue;
            };
            if state.last_seen_ms.is_none_or(|t| t <= timestamp_ms) {
                if state.event_count == 0 {
                    return Ok(None);
                }
                return Ok(Some(Profile::of_state(
                    customer_id,
                    v,
                    state,
                    &self.model(),
                    &self.inner.layout,
                    Some(timestamp_ms),
                    now,
                )));
            }
        }
        if rec.base_version() == 0 {
            return Ok(None); // the customer's first event is later than `timestamp_ms`
        }
        Err(Error::invalid_argument(
            "timestamp",
            format!(
                "{timestamp_ms} is older than the retained history of {customer_id:?} \
                 (versions {oldest}..={} are kept)",
                rec.version
            ),
        ))
    }

    /// The model as of the last committed batch. (Users read it through [`Db::model_info`]; the
    /// state itself is the storage format's.)
    pub(crate) fn model(&self) -> Arc<ModelState> {
        self.inner.shared.model.read().clone()
    }

    /// Model metrics and segment sizes.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = persona::Db::open(dir.path())?;
    /// let info = db.model_info();
    /// assert_eq!(info.examples, 0);
    /// assert_eq!(info.segments.len(), 8);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn model_info(&self) -> ModelInfo {
        ModelInfo::of(
            &self.model(),
            self.inner.shared.open_examples.load(Ordering::Relaxed) as u64,
            self.inner.shared.snapshots.read().clone(),
        )
    }

    /// Every segment: its size, and its members' statistics as of the watermark in raw units
    /// (median days since the last event, mean and median spend, buyers, mean propensity, …),
    /// computed over all members or, in a large store, a uniform sample of about 50,000 of them
    /// (each segment says how many it evaluated); the label and the rule's action derived from those statistics, and the
    /// feedback statistics of every action. Empty until the segments are seeded. One pass over
    /// the profile keys: every surface (`persona segments`, `export segments`, `SEGMENT.LIST`,
    /// the report) reads this.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails while scanning.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = persona::Db::open(dir.path())?;
    /// assert!(db.segments()?.is_empty(), "not seeded yet");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        Ok(self.segments_of(&self.model())?.as_ref().clone())
    }

    /// Describes the segments of `model` and remembers the result for [`Db::strategy`].
    pub(super) fn segments_of(&self, model: &ModelState) -> Result<Arc<Vec<SegmentInfo>>> {
        let segs = Arc::new(segments::summarise_and_describe(
            &self.inner.store,
            model,
            &self.inner.layout,
            self.inner.config.horizon_days,
        )?);
        self.inner
            .segment_cache
            .put(model.version, Arc::clone(&segs));
        Ok(segs)
    }

    /// The segment descriptions of `model` that [`Db::segments_of`] remembered last, or new
    /// ones if the model changed since (or they are older than the cache keeps them).
    pub(super) fn cached_segments(&self, model: &ModelState) -> Result<Arc<Vec<SegmentInfo>>> {
        match self.inner.segment_cache.get(model.version) {
            Some(segs) => Ok(segs),
            None => self.segments_of(model),
        }
    }

    /// Names of the feature-vector dimensions, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.inner.layout.names()
    }

    /// The feature layout.
    pub(crate) fn layout(&self) -> &FeatureLayout {
        &self.inner.layout
    }

    /// Members of a segment after `cursor` (exclusive), at most `limit`, in key order: by
    /// customer id in a plain store, by token (a keyed hash of the id) in an encrypted one.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn segment_members(
        &self,
        segment: u16,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.inner.store.members(segment, cursor, limit, &|_| true)
    }

    /// [`Db::segment_members`] among the customers `keep` accepts (a cluster node: those of
    /// the partitions it owns).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn segment_members_where(
        &self,
        segment: u16,
        cursor: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        self.inner.store.members(segment, cursor, limit, keep)
    }

    /// Number of customers with a profile that `keep` accepts (a full scan).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub(crate) fn profile_count_where(&self, keep: &dyn Fn(&str) -> bool) -> Result<u64> {
        let mut n = 0u64;
        for item in self.inner.store.scan_profiles() {
            let (id, _) = item?;
            n += u64::from(keep(&id));
        }
        Ok(n)
    }

    /// Every profile, evaluated as of the watermark with the current model, in key order (by
    /// customer id in a plain store, by token in an encrypted one). Streams: one record is
    /// decoded at a time. A record that does not decode (or, sealed, does not open) is an
    /// error item, as is a record whose data key is missing.
    pub fn profiles(&self) -> impl Iterator<Item = Result<Profile>> + '_ {
        let model = self.model();
        self.inner.store.scan_profiles_strict().map(move |item| {
            let (id, bytes) = item?;
            let rec = self.inner.store.decode_profile_current(&id, &bytes)?;
            let consent = self.inner.config.consent_defaults;
            Ok(Profile::evaluate(
                &id,
                rec,
                &model,
                &self.inner.layout,
                consent,
            ))
        })
    }

    /// What `persona report` draws: every segment (size, label, standardised centroid) and a
    /// uniform sample of at most `sample` customers (standardised vector as of the watermark,
    /// nearest segment).
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails; damaged records are left out of the sample.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub(crate) fn report_input(&self, sample: usize) -> Result<crate::query::report::ReportInput> {
        use crate::query::report::{ReportInput, ReportPoint, ReportSegment};
        use rand::{Rng, SeedableRng};
        let model = self.model();
        let segments = self.segments_of(&model)?;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(self.inner.config.model.seed);
        let mut points: Vec<ReportPoint> = Vec::new();
        let mut customers = 0u64;
        for item in self.inner.store.scan_profiles() {
            let (id, bytes) = item?;
            customers += 1;
            let slot = if points.len() < sample {
                None
            } else {
                let j = rng.gen_range(0..customers as usize);
                if j >= sample {
                    continue;
                }
                Some(j)
            };
            let Ok(rec) = self.inner.store.decode_profile_current(&id, &bytes) else {
                continue; // a damaged record is left out of the picture; `check` reports it
            };
            let x = self.as_of_now(&rec.state, &model);
            let Some((seg, _)) = model.segments.assign(&x) else {
                continue;
            };
            let point = ReportPoint {
                segment: seg as u16,
                vector: model.segments.scale().transform_vec(&x),
            };
            match slot {
                None => points.push(point),
                Some(j) => points[j] = point,
            }
        }
        let as_of = crate::event::utc_day(model.watermark_ms);
        Ok(ReportInput {
            title: "Customer segments".into(),
            subtitle: format!(
                "{customers} customers · {} segments · as of {as_of}",
                segments.len()
            ),
            segments: segments
                .iter()
                .map(|s| ReportSegment {
                    id: s.id,
                    size: s.size,
                    label: s.label.clone(),
                    centroid: model.segments.scaled_centroid(s.id as usize).to_vec(),
                })
                .collect(),
            points,
        })
    }

    /// Number of customers with a profile (a full scan: O(customers)).
    pub fn profile_count(&self) -> usize {
        self.inner.store.profile_count()
    }

    /// Bytes on disk.
    ///
    /// # Errors
    /// [`Error::Storage`] if sled fails.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.inner.store.size_on_disk()
    }

    /// What the writer has committed since this handle opened the store: commits, items, key
    /// writes and bytes written. `persona bench` reports key writes per event from it.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind};
    /// let db = Db::open(dir.path())?;
    /// db.ingest(Event::new("c1", 1_767_225_600_000, EventKind::Click))?;
    /// let first = db.stats();
    /// assert_eq!((first.commits, first.items), (1, 1));
    /// // The profile record, the new customer's entry in the segment sample (while the sample
    /// // is not full, every new customer joins it) and the model state. Their refit row waits
    /// // for the end of the day. (A plain store, `Encryption::Off`, also writes its copy of
    /// // the expiry queue: two more.)
    /// assert_eq!(first.key_writes, 3);
    /// db.ingest(Event::new("c1", 1_767_225_601_000, EventKind::Click))?;
    /// // The profile record and the model state.
    /// assert_eq!(db.stats().key_writes - first.key_writes, 2);
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn stats(&self) -> WriteStats {
        self.inner.shared.counters.snapshot()
    }

    /// The storage layer, for the crate's own tools (evaluate, bench) and, through
    /// [`crate::testing::DbInternals`], its tests: it hands out sled, so it is no part of the
    /// library's API.
    #[cfg(any(feature = "cli", feature = "testing"))]
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The `n` segments nearest to a customer (evaluated as of the watermark) or to a raw
    /// feature vector (same layout as [`Profile::features`]), nearest first. Empty before the
    /// segments are seeded, and for an unknown customer.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a vector of the wrong length or with non-finite values;
    /// [`Error::Corruption`] if the customer's record does not decode.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Target};
    /// let db = Db::open(dir.path())?;
    /// let err = db.nearest_segments(Target::Vector(&[1.0, 2.0]), 3).unwrap_err();
    /// assert!(err.to_string().contains("vector has 2 dimensions; the model expects 61"));
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn nearest_segments(&self, target: Target<'_>, n: usize) -> Result<Vec<SegmentDistance>> {
        let model = self.model();
        let x = match target {
            Target::Vector(v) => {
                crate::model::check_vector(v, self.inner.layout.dim())
                    .map_err(|e| Error::invalid_argument("vector", e.to_string()))?;
                v.to_vec()
            }
            Target::Customer(id) => {
                validate_customer_id(id)?;
                match self.inner.store.profile_current(id)? {
                    Some(rec) => self.as_of_now(&rec.state, &model),
                    None => return Ok(Vec::new()),
                }
            }
        };
        Ok(model
            .segments
            .assign_n(&x, n)
            .into_iter()
            .map(|(s, d)| SegmentDistance {
                segment: s as u16,
                distance: d,
            })
            .collect())
    }

    pub(super) fn standardised(
        &self,
        state: &crate::features::ProfileState,
        model: &ModelState,
    ) -> Vec<f64> {
        model.scaler.transform_vec(&self.as_of_now(state, model))
    }

    /// The raw feature vector of `state` as of now (the watermark, or the profile's own last
    /// event if later).
    pub(super) fn as_of_now(
        &self,
        state: &crate::features::ProfileState,
        model: &ModelState,
    ) -> Vec<f64> {
        let as_of = model
            .watermark_ms
            .max(state.last_seen_ms.unwrap_or(i64::MIN));
        self.inner.layout.vector(state, as_of)
    }

    /// A customer's propensity with the current model, as of the watermark, and the features
    /// that contributed most. `None` for an unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the record does not decode.
    pub fn score(&self, customer_id: &str) -> Result<Option<Score>> {
        validate_customer_id(customer_id)?;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        if !Consent::of(&rec.state, self.inner.config.consent_defaults).profiling {
            return Err(consent::refused(customer_id, "profiling"));
        }
        Ok(Some(score::score(
            customer_id,
            &rec.state,
            &self.model(),
            &self.inner.layout,
        )))
    }

    /// The last `n` retained versions of a customer's profile, newest first. `None` for an
    /// unknown customer.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the record does not decode.
    pub fn history(&self, customer_id: &str, n: usize) -> Result<Option<Vec<HistoryItem>>> {
        validate_customer_id(customer_id)?;
        Ok(self
            .inner
            .store
            .profile(customer_id)?
            .map(|rec| history::recent(&rec, n)))
    }

    /// The marketing action to take for a customer now, chosen from the per-segment action
    /// statistics as `choice` says, with rule-based priors.
    /// `None` for an unknown customer. The rule and label of the customer's segment are those
    /// [`Db::segments`] computed last, if the model has not changed since or it was less than
    /// five minutes ago; otherwise they are computed again first (one pass over the profile
    /// keys: about 1 s at 500k profiles, so the first call after opening a large store is
    /// slow). The action carries up to three [`Db::recommend`] suggestions; until the
    /// co-occurrence table is rebuilt after an open, they come from what it holds so far
    /// (`recommend` itself waits for it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the segments are not seeded yet; [`Error::Storage`] if sled
    /// fails while the segment statistics are computed.
    pub fn strategy(&self, customer_id: &str, choice: Choice) -> Result<Option<Recommendation>> {
        validate_customer_id(customer_id)?;
        let greedy = choice == Choice::Greedy;
        let Some(rec) = self.inner.store.profile_current(customer_id)? else {
            return Ok(None);
        };
        let model = self.model();
        // The profile as of now: its nearest segment, and its engaged items for the suggestions.
        let consent = self.inner.config.consent_defaults;
        let given = Consent::of(&rec.state, consent);
        if !given.marketing {
            return Err(consent::refused(customer_id, "marketing"));
        }
        // A strategy is chosen per segment: a customer who is not profiled has none.
        if !given.profiling {
            return Err(consent::refused(customer_id, "profiling"));
        }
        let profile = Profile::evaluate(customer_id, rec, &model, &self.inner.layout, consent);
        let Some(seg) = profile.segment.map(usize::from) else {
            return Err(Error::invalid_argument(
                "segment",
                "segments are not seeded yet; strategies need segments",
            ));
        };
        let described = self.cached_segments(&model)?;
        let (label, rule) = described
            .get(seg)
            .map(|s| (s.label.clone(), s.rule_action.clone()))
            .unwrap_or_default();
        let rule = strategy::action_index(&model, &rule);
        let chosen = {
            let mut rng = self.inner.rng.lock();
            model.strategy.choose(seg, rule, greedy, &mut *rng)
        };
        let Some((action, posterior)) = chosen else {
            return Err(Error::Config("the action catalogue is empty".into()));
        };
        let mut chosen = strategy::explain(
            &model,
            customer_id,
            seg,
            &label,
            action,
            posterior,
            rule,
            greedy,
        );
        if chosen.action != "none" {
            let mut options = RecommendOptions::default();
            if chosen.action == "new_product" {
                options = options.exclude_purchased();
            }
            // Three suggestions, not waiting for the co-occurrence rebuild after an open: they
            // are not worth holding the strategy up for (`recommend` waits).
            chosen.suggestions =
                self.suggestions(Some(&profile), &model, &described, (3, false), options);
        }
        Ok(Some(chosen))
    }

    /// What to offer the customer next, at most `n` suggestions (1 to 100), each with its score
    /// and reason. For items, three lists blended: their own items by the chance they buy each
    /// again next (a ranking learned online from repeat purchases), the items other customers
    /// take with theirs ("customers who bought X often take it too": item co-occurrence), and
    /// the items everyone engages with most lately. For categories, their own, then the
    /// segment's and everyone's (the segment statistics' lists, cached like the strategy's).
    /// An unknown customer gets the popular ones (`query/recommend.rs`).
    ///
    /// The co-occurrence table is kept in memory and rebuilt from the records when a store
    /// that saw items is opened: until that scan is done (28 s at a million profiles,
    /// `docs/benchmarks.md`), this waits for it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `n` outside 1..=100 or a bad customer id;
    /// [`Error::Storage`] if sled fails.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use persona::{Db, Event, EventKind, RecommendOptions};
    /// let db = Db::open(dir.path())?;
    /// let t = 1_767_225_600_000;
    /// db.ingest(Event::new("c", t, EventKind::Purchase).with_value(5.0).with_item("mug"))?;
    /// db.ingest(Event::new("c", t + 1, EventKind::View).with_item("pan"))?;
    /// let next = db.recommend("c", 10, RecommendOptions::default())?;
    /// assert_eq!(next[0].name, "mug");
    /// assert!(next[0].reason.starts_with("bought it before"));
    /// let new = db.recommend("c", 10, RecommendOptions::default().exclude_purchased())?;
    /// assert_eq!(new[0].name, "pan");
    /// # Ok::<(), persona::Error>(())
    /// ```
    pub fn recommend(
        &self,
        customer_id: &str,
        n: usize,
        options: RecommendOptions,
    ) -> Result<Vec<Suggestion>> {
        validate_customer_id(customer_id)?;
        if !(1..=100).contains(&n) {
            return Err(Error::invalid_argument(
                "count",
                format!("{n} is out of range; allowed 1..=100"),
            ));
        }
        let mut profile = self.profile(customer_id)?;
        if let Some(p) = profile.as_ref() {
            if !p.consent.marketing {
                return Err(consent::refused(customer_id, "marketing"));
            }
            // Not profiled: what everyone gets (the popular items), as for an unknown customer.
            if !p.consent.profiling {
                profile = None;
            }
        }
        let model = self.model();
        let described = if model.segments.is_seeded() {
            self.cached_segments(&model)?
        } else {
            Arc::new(Vec::new())
        };
        Ok(self.suggestions(profile.as_ref(), &model, &described, (n, true), options))
    }

    /// `recommend`'s list of `n` for a profile, given the model and the segment descriptions;
    /// `wait`: for the co-occurrence table's rebuild after an open.
    fn suggestions(
        &self,
        profile: Option<&Profile>,
        model: &ModelState,
        segments: &[SegmentInfo],
        (n, wait): (usize, bool),
        options: RecommendOptions,
    ) -> Vec<Suggestion> {
        let tiers = recommend::popular_tiers(
            &model.popularity,
            segments,
            profile.and_then(|p| p.segment),
            options.catalogue == Catalogue::Categories,
            model.watermark_ms,
            self.inner.layout.params().item_half_life_ms(),
        );
        // The customer's own items ranked by the rebuy model, and the items related to them.
        let (chances, related) = match profile {
            Some(p) if options.catalogue == Catalogue::Items && !p.top_items.is_empty() => self
                .inner
                .shared
                .together
                .read(wait, |table| {
                    let own = &p.top_items;
                    let chances =
                        recommend::rebuy_chances(&model.rebuy, table, own, model.watermark_ms);
                    (chances, recommend::related(table, own, n))
                })
                .unwrap_or_default(),
            _ => (Vec::new(), Vec::new()),
        };
        recommend::suggest(profile, &chances, &related, &tiers, n, options)
    }
}
