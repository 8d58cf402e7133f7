//! Names for category buckets.
//!
//! Categories are hashed into a fixed number of buckets, so the feature vector does not know
//! their names. To label segments ("top category: books") the writer keeps, per bucket, the most
//! frequent category names seen, with the Space-Saving algorithm (at most [`NAMES_PER_BUCKET`]
//! counters per bucket, so memory stays fixed however many categories arrive).

use serde::{Deserialize, Serialize};

/// Counters kept per bucket.
pub const NAMES_PER_BUCKET: usize = 4;

/// Most frequent category names per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryNames {
    buckets: Vec<Vec<(String, u64)>>,
}

impl CategoryNames {
    /// Empty counters for `buckets` buckets.
    pub fn new(buckets: usize) -> CategoryNames {
        CategoryNames {
            buckets: vec![Vec::new(); buckets],
        }
    }

    /// Counts one occurrence of `name` in `bucket`.
    pub fn observe(&mut self, bucket: usize, name: &str) {
        let Some(counters) = self.buckets.get_mut(bucket) else {
            return;
        };
        if let Some(c) = counters.iter_mut().find(|(n, _)| n == name) {
            c.1 += 1;
        } else if counters.len() < NAMES_PER_BUCKET {
            counters.push((name.to_string(), 1));
        } else if let Some(min) = counters.iter_mut().min_by_key(|(_, c)| *c) {
            // Space-Saving: the newcomer inherits the smallest count (an overestimate bound).
            *min = (name.to_string(), min.1 + 1);
        }
    }

    /// The most frequent name in `bucket`.
    pub fn name(&self, bucket: usize) -> Option<&str> {
        self.buckets
            .get(bucket)?
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(n, _)| n.as_str())
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether there are no buckets.
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
            c.observe(0, n);
        }
        assert_eq!(c.name(0), Some("books"));
        assert_eq!(c.name(1), None);
        c.observe(5, "ignored");
        assert_eq!(c.len(), 2);
    }
}
