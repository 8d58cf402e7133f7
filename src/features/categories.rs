//! Names for category buckets.
//!
//! Categories are hashed into a fixed number of buckets, so the feature vector does not know
//! their names. To label segments ("top category: books") the writer keeps, per bucket, the most
//! frequent category names seen, with the Space-Saving algorithm (at most [`NAMES_PER_BUCKET`]
//! counters per bucket, so memory stays fixed however many categories arrive).
//!
//! A bucket is often shared: 10 categories hashed into the default 16 buckets all land apart
//! with probability 16!/(6!·16¹⁰) ≈ 5 % (≈ 48 % with 64 buckets), so more buckets alone would
//! not make names trustworthy. [`CategoryNames::label`] therefore names every category that
//! holds a real share of its bucket ("garden/sports"), never one name for a mix.

use super::held::{HeldBy, Holder};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Counters kept per bucket.
pub const NAMES_PER_BUCKET: usize = 4;
/// A name is part of its bucket's label when its count is at least this share of the bucket's
/// most frequent name (rarer names are noise for a label, and Space-Saving overestimates them).
pub const LABEL_MIN_RATIO: f64 = 0.1;

/// Most frequent category names per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryNames {
    pub(crate) buckets: Vec<Vec<NameCount>>,
}

/// One counted category name (encoded as the pair `(name, count)` it was before names had
/// holders; the holder is persisted in its own section, `model/names.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameCount {
    /// The category name.
    pub name: CompactString,
    /// Events counted (Space-Saving: an upper bound).
    pub count: u64,
    /// Who alone has named it.
    #[serde(skip)]
    pub held: HeldBy,
}

impl CategoryNames {
    /// Empty counters for `buckets` buckets.
    pub fn new(buckets: usize) -> CategoryNames {
        CategoryNames {
            buckets: vec![Vec::new(); buckets],
        }
    }

    /// Counts one occurrence of `name` in `bucket`, named by the customer `by`.
    pub fn observe(&mut self, bucket: usize, name: &str, by: &Holder) {
        let Some(counters) = self.buckets.get_mut(bucket) else {
            return;
        };
        let listed = |count| NameCount {
            name: CompactString::from(name),
            count,
            held: HeldBy::new(by),
        };
        if let Some(c) = counters.iter_mut().find(|c| c.name == name) {
            c.count += 1;
            c.held.named_by(by);
        } else if counters.len() < NAMES_PER_BUCKET {
            counters.push(listed(1));
        } else if let Some(min) = counters.iter_mut().min_by_key(|c| c.count) {
            // Space-Saving: the newcomer inherits the smallest count (an overestimate bound).
            *min = listed(min.count + 1);
        }
    }

    /// The most frequent name in `bucket`.
    #[cfg(any(test, feature = "testing"))]
    pub fn name(&self, bucket: usize) -> Option<&str> {
        self.buckets
            .get(bucket)?
            .iter()
            .max_by(|a, b| a.count.cmp(&b.count).then_with(|| b.name.cmp(&a.name)))
            .map(|c| c.name.as_str())
    }

    /// The names counted in `bucket`, most frequent first (ties by name), with their counts.
    pub fn names(&self, bucket: usize) -> Vec<(&str, u64)> {
        let mut names: Vec<(&str, u64)> = self
            .buckets
            .get(bucket)
            .map(|c| c.iter().map(|c| (c.name.as_str(), c.count)).collect())
            .unwrap_or_default();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        names
    }

    /// An honest name for `bucket`: every category whose count is at least [`LABEL_MIN_RATIO`]
    /// of the most frequent one, most frequent first, joined by `/` ("garden/sports"); one name
    /// only when the bucket holds (essentially) one category. `None` for a bucket without names.
    ///
    /// # Examples
    /// ```
    /// use persona::testing::features::categories::CategoryNames;
    /// let mut names = CategoryNames::new(2);
    /// for n in ["sports", "garden", "sports", "books"] {
    ///     names.observe(if n == "books" { 1 } else { 0 }, n, &[0; 16]);
    /// }
    /// assert_eq!(names.label(0).as_deref(), Some("sports/garden"));
    /// assert_eq!(names.label(1).as_deref(), Some("books"));
    /// assert_eq!(names.label(5), None);
    /// ```
    pub fn label(&self, bucket: usize) -> Option<String> {
        let names = self.names(bucket);
        let top = names.first()?.1 as f64;
        let shared: Vec<&str> = names
            .iter()
            .filter(|(_, c)| *c as f64 >= LABEL_MIN_RATIO * top)
            .map(|(n, _)| *n)
            .collect();
        Some(shared.join("/"))
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether there are no buckets.
    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_name_wins() {
        let mut c = CategoryNames::new(2);
        for n in [
            "books", "music", "books", "toys", "books", "garden", "home", "x",
        ] {
            c.observe(0, n, &[0; 16]);
        }
        assert_eq!(c.name(0), Some("books"));
        assert_eq!(c.name(1), None);
        c.observe(5, "ignored", &[0; 16]);
        assert_eq!(c.len(), 2);
        // "books" 3, the rest 1 each (Space-Saving may overcount the last ones): a shared bucket
        // is labelled with every name that holds a real share.
        assert_eq!(c.names(0)[0], ("books", 3));
        let label = c.label(0).expect("named");
        assert!(label.starts_with("books/"), "{label}");
        let mut solo = CategoryNames::new(1);
        for _ in 0..20 {
            solo.observe(0, "toys", &[0; 16]);
        }
        solo.observe(0, "typo", &[0; 16]);
        assert_eq!(
            solo.label(0).as_deref(),
            Some("toys"),
            "a 1-in-21 name is noise"
        );
    }
}
