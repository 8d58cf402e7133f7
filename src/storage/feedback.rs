//! The feedback ledger (`F` keys): each strategy outcome recorded for a customer, kept so that
//! erasing the customer subtracts exactly what they added to the strategy's counts.

use super::Store;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// One outcome recorded with `FEEDBACK` / `Db::feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackOutcome {
    /// The action, by name (the catalogue may change between opens).
    pub action: String,
    /// The segment it was credited to.
    pub segment: u16,
    /// Whether the customer converted.
    pub converted: bool,
    /// The store's watermark when it was recorded (event time, unix ms).
    pub at_ms: i64,
}

impl Store {
    /// The feedback ledger of `customer`: each key with its outcome, oldest first, or the
    /// error of an entry that does not decode (an erase still removes it).
    ///
    /// # Errors
    /// [`crate::Error::Storage`] if sled fails.
    pub(crate) fn feedback_of(
        &self,
        customer: &str,
    ) -> Result<Vec<(Vec<u8>, Result<FeedbackOutcome>)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(self.feedback_prefix(customer)) {
            let (k, v) = item?;
            let name = || format!("feedback ledger key of customer {customer:?}");
            let decoded = match self.unseal(&k, v) {
                Ok(Some((_, v))) => super::codec::decode(&name, &v),
                Ok(None) => Err(crate::Error::Corruption {
                    key: name(),
                    detail: "its customer's data key is gone".into(),
                }),
                Err(e) => Err(e),
            };
            out.push((k.to_vec(), decoded));
        }
        Ok(out)
    }
}
