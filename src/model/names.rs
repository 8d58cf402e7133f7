//! Who a catalogue name in the shared models came from, so that an erase can take back the
//! names only its customer gave.
//!
//! The models keep item and category names (the popularity summary, [`super::popularity`],
//! and the category bucket names, `features/categories.rs`). Most name the shop's catalogue,
//! and many customers engage with them. But a name that one customer alone has used (a rare
//! item, or a personal value put in the `item` field) is that customer's data. So every listed
//! name carries its [`HeldBy`]: the one customer who has named it while only one has (their
//! [`Holder`]), or nobody once a second customer names it.
//!
//! - **Erase** drops every entry its customer holds alone ([`super::ModelState::forget_holder`]),
//!   in the same batch as their records, from the live state and from every kept snapshot
//!   (`pipeline/maintain.rs`). A withdrawal of consent to profiling drops them from the live
//!   state.
//! - **Encrypted stores** never write a held name in clear. It is sealed with its holder's
//!   data key, the same key as their records, so the crypto-shredding that makes their records
//!   unreadable makes every copy of the name unreadable too, in the model state, in its
//!   snapshots and in sled's log. A plain store writes names in clear.
//! - **Persisted** as a section after the rest of the state (model record version 6): the
//!   position of each held entry, its holder and, in an encrypted store, the sealed name (the
//!   name itself is then written empty where it sits). Entries of earlier records have no
//!   holder: they are taken as named by several customers.

use super::{ModelError, ModelState};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use crate::features::held::{HeldBy, Holder};

/// A held entry as persisted (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeldName {
    /// The entry's position: category buckets in order, then the global popularity list,
    /// then each segment's.
    pub(crate) at: u32,
    /// Its holder.
    pub(crate) holder: Holder,
    /// Its name sealed with the holder's data key (encrypted stores; the name is then written
    /// empty in its place).
    pub(crate) sealed: Option<Vec<u8>>,
}

impl ModelState {
    /// Every listed name with its holder, in the persisted order: the category buckets, the
    /// global popularity list, then each segment's.
    fn names(&self) -> impl Iterator<Item = (&CompactString, &HeldBy)> {
        let categories = self.categories.buckets.iter().flatten();
        let popularity = self.popularity.global.iter();
        let segments = self.popularity.segments.iter().flatten();
        categories
            .map(|c| (&c.name, &c.held))
            .chain(popularity.chain(segments).map(|c| (&c.name, &c.held)))
    }

    /// [`Self::names`], to change.
    fn names_mut(&mut self) -> impl Iterator<Item = (&mut CompactString, &mut HeldBy)> {
        let categories = self.categories.buckets.iter_mut().flatten();
        let popularity = self.popularity.global.iter_mut();
        let segments = self.popularity.segments.iter_mut().flatten();
        categories.map(|c| (&mut c.name, &mut c.held)).chain(
            popularity
                .chain(segments)
                .map(|c| (&mut c.name, &mut c.held)),
        )
    }

    /// Keeps the listed names `keep(name, holder)` is true for (it may change the holder) and
    /// drops the others, in the category buckets and every popularity list; returns how many
    /// went. Removal keeps each list's order.
    fn retain_names(&mut self, mut keep: impl FnMut(&CompactString, &mut HeldBy) -> bool) -> usize {
        let before = self.names().count();
        for bucket in &mut self.categories.buckets {
            bucket.retain_mut(|c| keep(&c.name, &mut c.held));
        }
        let popularity = &mut self.popularity;
        for list in std::iter::once(&mut popularity.global).chain(popularity.segments.iter_mut()) {
            list.retain_mut(|c| keep(&c.name, &mut c.held));
        }
        before - self.names().count()
    }

    /// Drops every item and category name the customer `by` alone has named (an erase);
    /// returns how many entries went.
    pub fn forget_holder(&mut self, by: &Holder) -> usize {
        self.retain_names(|_, h| !h.is(by))
    }

    /// The holders section as a plain store writes it: names stay where they are.
    pub(super) fn holders_in_clear(&self) -> Vec<HeldName> {
        (0u32..)
            .zip(self.names())
            .filter_map(|(at, (_, h))| {
                h.holder.map(|holder| HeldName {
                    at,
                    holder,
                    sealed: None,
                })
            })
            .collect()
    }

    /// Serialises the state as an encrypted store writes it: every held name sealed for its
    /// holder by `seal(holder, name)` (once per entry; the sealed copy is kept) and written empty
    /// in its place. See the module docs.
    ///
    /// # Errors
    /// The first error of `seal`; the state is then unchanged but for the names sealed so far.
    pub fn encode_sealed<E>(
        &mut self,
        mut seal: impl FnMut(&Holder, &str) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        for (name, h) in self.names_mut() {
            if let (Some(holder), None) = (h.holder, &h.sealed) {
                h.sealed = Some(seal(&holder, name)?.into());
            }
        }
        let mut held = Vec::new();
        let mut taken = Vec::new();
        for (at, (name, h)) in (0u32..).zip(self.names_mut()) {
            if let (Some(holder), Some(sealed)) = (h.holder, &h.sealed) {
                held.push(HeldName {
                    at,
                    holder,
                    sealed: Some(sealed.to_vec()),
                });
                taken.push(std::mem::take(name));
            }
        }
        let out = self.encode_with(&held);
        let mut taken = taken.into_iter();
        for (name, h) in self.names_mut() {
            if h.holder.is_some() {
                if let Some(n) = taken.next() {
                    *name = n;
                }
            }
        }
        Ok(out)
    }

    /// Gives the decoded names their holders, and the sealed ones their sealed copy.
    pub(super) fn set_holders(&mut self, held: Vec<HeldName>) -> Result<(), ModelError> {
        let total = self.names().count();
        let bad = |msg: String| Err(ModelError::Inconsistent(format!("name holders: {msg}")));
        let mut last = None;
        for h in &held {
            if h.at as usize >= total || last.is_some_and(|l| h.at <= l) {
                return bad(format!(
                    "position {} out of order or beyond the {total} names",
                    h.at
                ));
            }
            last = Some(h.at);
        }
        let mut held = held.into_iter().peekable();
        for (at, (name, h)) in (0u32..).zip(self.names_mut()) {
            let Some(entry) = held.next_if(|h| h.at == at) else {
                if name.is_empty() {
                    return bad(format!("name {at} is empty and not sealed"));
                }
                continue;
            };
            h.holder = Some(entry.holder);
            match entry.sealed {
                Some(_) if !name.is_empty() => {
                    return bad(format!("name {at} is both sealed and in clear"));
                }
                Some(sealed) => h.sealed = Some(sealed.into()),
                None if name.is_empty() => return bad(format!("name {at} is empty")),
                None => {}
            }
        }
        Ok(())
    }

    /// Whether names are still sealed: a state decoded from an encrypted store, not yet
    /// opened with [`Self::open_names`].
    pub fn has_sealed_names(&self) -> bool {
        self.names()
            .any(|(name, h)| name.is_empty() && h.sealed.is_some())
    }

    /// Opens the sealed names of a decoded state with `open(holder, sealed)`, which gives
    /// `None` when the holder's data key is gone (they were erased): those entries are dropped.
    /// Returns how many were.
    ///
    /// # Errors
    /// The first error of `open` (a sealed name that does not open).
    pub fn open_names<E>(
        &mut self,
        mut open: impl FnMut(&Holder, &[u8]) -> Result<Option<String>, E>,
    ) -> Result<usize, E> {
        for (name, h) in self.names_mut() {
            if let (true, Some(holder), Some(sealed)) = (name.is_empty(), h.holder, &h.sealed) {
                if let Some(opened) = open(&holder, sealed)? {
                    *name = opened.into();
                }
            }
        }
        // Still empty and sealed: the holder's key is gone.
        let dropped = self.retain_names(|name, h| !(name.is_empty() && h.sealed.is_some()));
        self.popularity.sort();
        Ok(dropped)
    }

    /// Gives every held name the holder `map` makes of its own (`compact --encrypt`: a plain
    /// store's id hash becomes the customer's token); an entry `map` has none for is dropped.
    /// Returns how many were.
    #[cfg(any(feature = "cli", feature = "testing", test))]
    pub fn map_holders(&mut self, map: impl Fn(&Holder) -> Option<Holder>) -> usize {
        self.retain_names(|_, held| remap(held, &map))
    }
}

/// [`ModelState::map_holders`] for one entry: whether it stays.
#[cfg(any(feature = "cli", feature = "testing", test))]
fn remap(held: &mut HeldBy, map: &impl Fn(&Holder) -> Option<Holder>) -> bool {
    let Some(holder) = held.holder else {
        return true;
    };
    held.sealed = None;
    match map(&holder) {
        Some(new) => {
            held.holder = Some(new);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use crate::EventKind;

    const DAY: i64 = 86_400_000;

    /// A state whose category bucket 0 holds "toys" (customers 1 and 2) and "rare-cat"
    /// (customer 1), and whose popularity lists hold "mug" (1 and 2) and "unique-item" (2).
    fn state() -> ModelState {
        let mut state = ModelState::new(4, &ModelConfig::default());
        state.categories = crate::features::categories::CategoryNames::new(2);
        for (name, by) in [("toys", 1), ("rare-cat", 1), ("toys", 2)] {
            state.categories.observe(0, name, &[by; 16]);
        }
        for (item, by) in [("mug", 1), ("unique-item", 2), ("mug", 2)] {
            let half = 90.0 * DAY as f64;
            let kind = EventKind::Purchase;
            state
                .popularity
                .observe(kind, item, &[by; 16], Some(0), 8, DAY, half);
        }
        state
    }

    /// A stand-in for sealing: the holder's first byte, then the name reversed.
    fn seal(h: &Holder, name: &str) -> Result<Vec<u8>, String> {
        Ok(std::iter::once(h[0]).chain(name.bytes().rev()).collect())
    }

    #[test]
    fn holders_round_trip_in_clear() {
        let state = state();
        let back = ModelState::decode(&state.encode()).expect("decodes");
        assert_eq!(back, state);
        assert!(back.categories.buckets[0][1].held.is(&[1; 16]));
        assert!(!back.has_sealed_names());
    }

    #[test]
    fn sealed_names_are_not_written_and_open_back_or_go_with_their_holder() {
        let mut state = state();
        let bytes = state.encode_sealed(seal).expect("seals");
        let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !find(b"unique-item") && !find(b"rare-cat"),
            "held names in clear"
        );
        assert!(find(b"toys") && find(b"mug"), "shared names stay readable");
        assert_eq!(state.popularity.global[1].name, "unique-item", "restored");
        let mut back = ModelState::decode(&bytes).expect("decodes");
        assert!(back.has_sealed_names());
        let open = |h: &Holder, sealed: &[u8]| -> Result<Option<String>, String> {
            assert_eq!(sealed[0], h[0], "sealed for its holder");
            Ok(Some(sealed[1..].iter().rev().map(|&b| b as char).collect()))
        };
        assert_eq!(back.open_names(open), Ok(0));
        assert_eq!(back, state);
        // Customer 2's key is gone: "unique-item" goes from every list, "toys" and "mug" stay.
        let mut back = ModelState::decode(&bytes).expect("decodes");
        let erased = |h: &Holder, s: &[u8]| if h[0] == 2 { Ok(None) } else { open(h, s) };
        assert_eq!(back.open_names(erased), Ok(2), "global and segment 0");
        let mut expected = state.clone();
        assert_eq!(expected.forget_holder(&[2; 16]), 2);
        assert_eq!(back, expected);
        assert_eq!(back.categories.names(0).len(), 2);
    }

    #[test]
    fn a_damaged_holders_section_is_refused() {
        let state = state();
        let mut held = state.holders_in_clear();
        assert_eq!(held.len(), 3, "rare-cat, unique-item twice");
        held.swap(0, 1);
        let bytes = state.encode_with(&held);
        assert!(ModelState::decode(&bytes).is_err(), "out of order");
        let mut held = state.holders_in_clear();
        held[2].at = 99;
        assert!(
            ModelState::decode(&state.encode_with(&held)).is_err(),
            "beyond"
        );
        let mut held = state.holders_in_clear();
        held[0].sealed = Some(vec![1]);
        assert!(
            ModelState::decode(&state.encode_with(&held)).is_err(),
            "sealed and in clear"
        );
    }

    #[test]
    fn erase_and_remap_drop_what_only_that_customer_named() {
        let mut state = state();
        assert_eq!(state.forget_holder(&[1; 16]), 1, "rare-cat");
        assert_eq!(state.categories.names(0), [("toys", 2)]);
        let mut state = self::state();
        let dropped = state.map_holders(|h| (h[0] == 1).then_some([7; 16]));
        assert_eq!(dropped, 2, "customer 2's unique-item, twice");
        assert!(state.categories.buckets[0][1].held.is(&[7; 16]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20261207),
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Whatever the churn of the lists (Space-Saving replacing entries, names shared or
        /// not), sealing, decoding and opening gives the state back, and opening with some
        /// holders' keys gone gives the state those holders were erased from.
        #[test]
        fn sealed_names_round_trip_and_go_with_their_holders(
            events in proptest::collection::vec((0u8..200, 0u8..6, 0u8..3), 1..600),
            gone in proptest::collection::vec(0u8..6, 0..3),
        ) {
            let mut state = ModelState::new(4, &ModelConfig::default());
            state.categories = crate::features::categories::CategoryNames::new(3);
            let half = 90.0 * DAY as f64;
            for (n, (item, by, seg)) in events.into_iter().enumerate() {
                let by = [by; 16];
                let name = format!("item-{item}");
                let t = DAY + n as i64;
                let kind = EventKind::Purchase;
                state.popularity.observe(kind, &name, &by, Some(usize::from(seg)), 3, t, half);
                state.categories.observe(usize::from(seg), &format!("cat-{}", item % 7), &by);
            }
            let bytes = state.encode_sealed(seal).expect("seals");
            let open = |h: &Holder, sealed: &[u8]| -> Result<Option<String>, String> {
                if gone.contains(&h[0]) {
                    return Ok(None);
                }
                Ok(Some(sealed[1..].iter().rev().map(|&b| b as char).collect()))
            };
            let mut back = ModelState::decode(&bytes).expect("decodes");
            back.open_names(open).expect("opens");
            let mut expected = state.clone();
            for g in &gone {
                expected.forget_holder(&[*g; 16]);
            }
            proptest::prop_assert_eq!(&back, &expected);
            // And what was read is written again the same way.
            let again = back.encode_sealed(seal).expect("seals");
            let mut twice = ModelState::decode(&again).expect("decodes");
            twice.open_names(open).expect("opens");
            proptest::prop_assert_eq!(twice, expected);
        }
    }
}
