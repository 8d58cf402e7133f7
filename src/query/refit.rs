//! The sample of a re-segmentation's refit: a uniform reservoir sample of all profiles, as raw
//! feature vectors as of the watermark (the writer fits the segments to it, see
//! [`crate::model::Segments::fit`]). The writer's own fits use the smaller sample it keeps;
//! `persona resegment --refit` and the bulk import's refit use this bigger one.

use crate::error::Result;
use crate::features::vector::FeatureLayout;
use crate::model::ModelState;
use crate::storage::Store;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Profiles sampled for a refit.
pub const SAMPLE: usize = 20_000;

/// Up to `sample` profiles with events, uniformly drawn (reservoir sampling, seeded), as raw
/// feature vectors as of the watermark.
pub(crate) fn sample(
    store: &Store,
    model: &ModelState,
    layout: &FeatureLayout,
    sample: usize,
    seed: u64,
    consent: crate::features::consent::Consent,
) -> Result<Vec<Vec<f64>>> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let now = model.watermark_ms;
    let mut reservoir: Vec<Vec<f64>> = Vec::new();
    let mut seen = 0usize;
    for item in store.scan_profiles() {
        let (id, bytes) = item?;
        let Ok(rec) = store.decode_profile_current(&id, &bytes) else {
            // A damaged record is left out of the sample; `persona check` reports it.
            continue;
        };
        // Without events nothing to segment; without consent to profiling, not to be fitted.
        let profiling = crate::features::consent::Consent::of(&rec.state, consent).profiling;
        if rec.state.event_count == 0 || !profiling {
            continue;
        }
        seen += 1;
        let slot = if reservoir.len() < sample {
            None
        } else {
            let j = rng.gen_range(0..seen);
            if j >= sample {
                continue;
            }
            Some(j)
        };
        let x = layout.vector(&rec.state, now);
        match slot {
            None => reservoir.push(x),
            Some(j) => reservoir[j] = x,
        }
    }
    Ok(reservoir)
}
