//! Who alone has named an entry of the shared models' catalogue names (an item or category
//! name): the [`Holder`] an entry carries until a second customer names it. What the model does
//! with it (erase, sealing, persistence) is `model/names.rs`; the type lives here, with the
//! features whose category names carry it, so that `model` imports `features` and not the
//! reverse.

/// Sixteen bytes that stand for one customer: their token in an encrypted store (a keyed hash
/// of the id), a hash of their id in a plain one.
pub type Holder = [u8; 16];

/// Who alone has named an entry, and (in an encrypted store) the entry's name sealed with their
/// data key, made once per entry.
#[derive(Clone, Default)]
pub struct HeldBy {
    /// The one customer who has named the entry; `None` once a second one has (or for an entry
    /// of a record written before names had holders).
    pub holder: Option<Holder>,
    /// The name sealed for `holder` (encrypted stores; made when the state is first written
    /// after the entry was listed).
    pub(crate) sealed: Option<Box<[u8]>>,
}

impl HeldBy {
    /// Held by `by`: a newly listed entry.
    pub fn new(by: &Holder) -> HeldBy {
        HeldBy {
            holder: Some(*by),
            sealed: None,
        }
    }

    /// Counts that `by` named the entry: it is shared from the moment a second customer does.
    pub fn named_by(&mut self, by: &Holder) {
        if self.holder.is_some_and(|h| h != *by) {
            self.holder = None;
            self.sealed = None;
        }
    }

    /// Whether `by` alone holds the entry.
    pub fn is(&self, by: &Holder) -> bool {
        self.holder.as_ref() == Some(by)
    }
}

/// Says whether the entry is held, not by whom (what stands for a customer differs between a
/// plain store and its encrypted copy) nor the sealed bytes.
impl std::fmt::Debug for HeldBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.holder.is_some() {
            "held"
        } else {
            "shared"
        })
    }
}

/// Entries compare by holder: the sealed copy differs with its random nonce and says nothing of
/// its own.
impl PartialEq for HeldBy {
    fn eq(&self, other: &Self) -> bool {
        self.holder == other.holder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_held_until_a_second_customer_names_it() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let mut held = HeldBy::new(&a);
        held.sealed = Some(vec![9].into());
        held.named_by(&a);
        assert!(held.is(&a));
        assert!(
            held.sealed.is_some(),
            "the same holder keeps its sealed name"
        );
        held.named_by(&b);
        assert!(!held.is(&a) && !held.is(&b));
        assert_eq!(held.holder, None);
        assert!(held.sealed.is_none());
        held.named_by(&a);
        assert_eq!(held.holder, None, "shared stays shared");
    }
}
