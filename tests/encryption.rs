//! Encryption at rest and crypto-shredding (`docs/privacy.md`, "Encryption at rest"): no file of
//! an encrypted store's data directory holds a customer's id or a value of theirs in clear, an
//! erase makes whatever sled's files still hold of them unreadable the moment it returns
//! (without `compact`, without closing), and a missing, wrong or badly protected key, or damaged
//! key slots, are refused with a clear error and change nothing.

mod common;

use common::{DAY, T0};
use persona::testing::DbInternals;
use persona::{AttrValue, Config, Db, Encryption, Error, Event, EventKind, Result};
use std::path::{Path, PathBuf};

/// Strings that occur nowhere but in one customer's data.
const VICTIM: &str = "victim-q7Zx31k";
const PLANTED_EMAIL: &str = "planted-9f2c71@example.org";
const PLANTED_EVENT_ID: &str = "planted-event-5b1e0d";
/// An item and a category only the victim names: they reach the shared models' popularity
/// lists and category names, sealed with the victim's data key.
const PLANTED_ITEM: &str = "planted-item-e81c5a";
const PLANTED_CATEGORY: &str = "planted-category-3c9d47";
const OTHER: &str = "other-p2Lm88w";
const OTHER_EMAIL: &str = "kept-4d0a2e@example.org";

/// 50 events and an e-mail attribute for `VICTIM`, the same for `OTHER`, a trigger that fires
/// for both, and feedback for both. Both name the item "novel" and the category "books"; the
/// victim alone also names `PLANTED_ITEM` and `PLANTED_CATEGORY`.
fn populate(db: &Db) -> Result<()> {
    for (c, email) in [(VICTIM, PLANTED_EMAIL), (OTHER, OTHER_EMAIL)] {
        for j in 0..50i64 {
            let kind = if j % 5 == 4 {
                EventKind::Purchase
            } else {
                EventKind::View
            };
            let (item, category) = match (c, j % 2) {
                (VICTIM, 1) => (PLANTED_ITEM, PLANTED_CATEGORY),
                _ => ("novel", "books"),
            };
            db.ingest(
                Event::new(c, T0 + j * DAY / 4, kind)
                    .with_value(10.0 + j as f64)
                    .with_category(category)
                    .with_item(item)
                    .with_id(format!("{c}-{PLANTED_EVENT_ID}-{j}")),
            )?;
        }
        db.set_attributes(c, vec![("email".into(), AttrValue::Text(email.into()))])?;
        db.feedback(persona::Feedback::new(c, "vip_offer", true).with_segment(0))?;
    }
    Ok(())
}

/// The files under `dir` that hold `needle`.
fn holding(dir: &Path, needle: &str) -> Result<Vec<String>> {
    Ok(common::store::files_holding(dir, needle)?)
}

/// A populated, closed store at `dir/store` whose key is the file `dir/KEY_NAME` (made at
/// creation); returns (data directory, key file).
fn keyed_store(dir: &Path, key_name: &str) -> Result<(PathBuf, PathBuf)> {
    let data = dir.join("store");
    let key = dir.join(key_name);
    let db = Config::new(&data).key_file(&key).open()?;
    populate(&db)?;
    db.close()?;
    Ok((data, key))
}

/// Every string planted in one customer's data.
const PLANTED: [&str; 7] = [
    VICTIM,
    PLANTED_EMAIL,
    PLANTED_EVENT_ID,
    PLANTED_ITEM,
    PLANTED_CATEGORY,
    OTHER,
    OTHER_EMAIL,
];

/// Whether the shared models list `name` (popularity or category names).
fn models_name(db: &Db, name: &str) -> bool {
    let model = db.model();
    let popular = model.popularity.global.iter().any(|c| c.name == name);
    let category = (0..model.categories.len())
        .any(|b| model.categories.names(b).iter().any(|(n, _)| *n == name));
    popular || category
}

#[test]
fn no_file_holds_an_id_or_a_value_in_clear_and_an_erase_is_final_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let db = Config::new(&data).open()?;
    assert!(
        db.store().is_encrypted(),
        "new stores are encrypted by default"
    );
    db.trigger_add("first", &["FIRST_PURCHASE", "COOLDOWN", "0"])?;
    populate(&db)?;
    assert!(db.profile(VICTIM)?.is_some());
    assert!(!db.read_triggers(0, 100)?.is_empty(), "the trigger fired");
    for name in [PLANTED_ITEM, PLANTED_CATEGORY, "novel", "books"] {
        assert!(models_name(&db, name), "the models list {name}");
    }
    for needle in PLANTED {
        assert_eq!(
            holding(&data, needle)?,
            Vec::<String>::new(),
            "{needle} in clear"
        );
    }
    // The victim's sealed values are in sled's log files: keep a copy of every file.
    let before = common::store::files(&data)?;

    let report = db.erase_report(VICTIM)?;
    assert!(report.erased);
    // The item in the global list, the category in its bucket (two customers seed no
    // segments, so there are no segment lists).
    assert_eq!(report.catalogue_names_dropped, 2, "{report:?}");
    for (name, kept) in [
        (PLANTED_ITEM, false),
        (PLANTED_CATEGORY, false),
        ("novel", true),
    ] {
        assert_eq!(models_name(&db, name), kept, "{name}");
    }
    assert!(models_name(&db, "books"));
    // At once, the store still open, nothing compacted: what the files held of the victim
    // (copied above, and whatever is still in them now) no longer opens. Their key slot is
    // zeroed, so no copy of the files taken from now on holds their data key.
    assert!(db.profile(VICTIM)?.is_none());
    assert_eq!(
        db.store().data_keys(),
        1,
        "only the other customer still has a data key"
    );
    let slots = std::fs::read(data.join("keys.slots"))?;
    let old_slots = before
        .iter()
        .find(|(name, _)| name.ends_with("keys.slots"))
        .map(|(_, b)| b.clone())
        .ok_or_else(|| Error::invalid_argument("files", "no key slots"))?;
    let changed: Vec<usize> = (0..slots.len().min(old_slots.len()))
        .filter(|&i| slots[i] != old_slots[i])
        .collect();
    assert!(!changed.is_empty(), "a slot was zeroed");
    assert!(
        changed.iter().all(|&i| slots[i] == 0),
        "the victim's slot holds only zeros now"
    );
    // The other customer is intact, and nothing names either customer in clear.
    let other = db.profile(OTHER)?.expect("kept");
    assert_eq!(
        other.attributes.get("email"),
        Some(&AttrValue::Text(OTHER_EMAIL.into()))
    );
    for needle in PLANTED {
        assert_eq!(
            holding(&data, needle)?,
            Vec::<String>::new(),
            "{needle} in clear"
        );
    }
    assert!(db
        .read_triggers(0, 100)?
        .iter()
        .all(|f| f.customer != VICTIM));
    db.close()?;
    drop(db);

    // Reopened from the copy taken before the erase but with the slots as they are now (what
    // someone holding an old copy of sled's files and the key would have): the victim's record
    // is there in sled and does not open.
    let report = persona::check_store(&data)?;
    assert!(report.is_clean(), "{:?}", report.problems);
    let db = Db::open(&data)?;
    assert!(db.profile(VICTIM)?.is_none());
    assert!(db.profile(OTHER)?.is_some());
    assert_eq!(db.profile_count(), 1);
    // The names the other customer gave are still readable, the victim's gone from the
    // snapshots too.
    assert!(models_name(&db, "novel") && !models_name(&db, PLANTED_ITEM));
    for version in db.store().snapshot_versions()? {
        let snapshot = db.store().snapshot(version)?.expect("listed");
        let names = format!("{:?}", snapshot.popularity);
        assert!(
            names.contains("novel") && !names.contains(PLANTED_ITEM),
            "{names}"
        );
    }
    Ok(())
}

#[test]
fn a_value_moved_under_another_customer_s_key_does_not_open() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path()).open()?;
    populate(&db)?;
    let sled = db.store().sled();
    let mut profiles = Vec::new();
    for item in sled.scan_prefix(b"P") {
        let (k, v) = item?;
        profiles.push((k.to_vec(), v.to_vec()));
    }
    assert_eq!(profiles.len(), 2);
    // The victim's sealed record under the other customer's key.
    sled.insert(&profiles[0].0, profiles[1].1.clone())?;
    let errors = [VICTIM, OTHER]
        .iter()
        .filter(|c| matches!(db.profile(c), Err(Error::Corruption { .. })))
        .count();
    assert_eq!(
        errors, 1,
        "exactly the overwritten record fails, as corruption"
    );
    Ok(())
}

#[test]
fn a_missing_wrong_or_exposed_key_and_damaged_slots_are_refused_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, key) = keyed_store(dir.path(), "store.key")?;
    let config = || Config::new(&data).key_file(&key);
    assert!(
        key.exists(),
        "a key file named in the configuration is made at creation"
    );
    assert!(
        !data.join("store.key").exists(),
        "the key is not kept in the data directory when a key file is configured"
    );
    let intact = || -> Result<()> {
        let db = config().open()?;
        assert_eq!(db.profile_count(), 2);
        assert!(db.profile(VICTIM)?.is_some());
        Ok(())
    };
    let refused = |c: Config| match c.open() {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    };

    // No key at all.
    let e = refused(Config::new(&data));
    assert!(
        matches!(&e, Error::Key(m) if m.contains("is encrypted and no key was given")),
        "{e}"
    );
    intact()?;

    // Another key.
    let other = dir.path().join("other.key");
    {
        let other_dir = dir.path().join("other");
        Config::new(&other_dir).key_file(&other).open()?.close()?;
    }
    let e = refused(Config::new(&data).key_file(&other));
    assert!(
        matches!(&e, Error::Key(m) if m.contains("does not open the store")),
        "{e}"
    );
    intact()?;

    // A key file others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let e = refused(config());
    assert!(
        matches!(&e, Error::Key(m) if m.contains("0644") && m.contains("chmod 600")),
        "{e}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    intact()?;

    // A key file that is not a key.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not hex")?;
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600))?;
    let e = refused(Config::new(&data).key_file(&bad));
    assert!(matches!(&e, Error::Key(_)), "{e}");
    intact()?;

    // The slot file cut short, then gone.
    let slots = data.join("keys.slots");
    let whole = std::fs::read(&slots)?;
    std::fs::write(&slots, &whole[..whole.len() - 7])?;
    let e = refused(config());
    assert!(
        matches!(&e, Error::Corruption { detail, .. } if detail.contains("truncated")),
        "{e}"
    );
    std::fs::remove_file(&slots)?;
    let e = refused(config());
    assert!(
        matches!(&e, Error::Corruption { detail, .. } if detail.contains("missing")),
        "{e}"
    );
    std::fs::write(&slots, &whole)?;
    std::fs::set_permissions(&slots, std::fs::Permissions::from_mode(0o600))?;
    intact()?;
    Ok(())
}

#[test]
fn a_plain_store_stays_plain_and_checks_clean() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path()).encryption(Encryption::Off).open()?;
    populate(&db)?;
    db.close()?;
    drop(db);
    // Reopened by a configuration that asks for encryption: as it was created.
    let db = Config::new(dir.path()).open()?;
    assert!(!db.store().is_encrypted());
    assert!(db.profile(VICTIM)?.is_some());
    assert!(!holding(dir.path(), VICTIM)?.is_empty(), "ids are in clear");
    assert!(!dir.path().join("keys.slots").exists());
    db.close()?;
    drop(db);
    assert!(persona::check_store(dir.path())?.is_clean());
    Ok(())
}

#[test]
fn check_finds_a_damaged_sealed_record_and_reads_fail_for_that_customer_only() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path()).open()?;
    populate(&db)?;
    let victim_key = db.store().profile_key_of(VICTIM);
    db.close()?;
    drop(db);
    common::store::raw(dir.path(), |sled| {
        let mut v = sled.get(&victim_key)?.expect("stored").to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        sled.insert(&victim_key, v)
    })?;
    let report = persona::check_store(dir.path())?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let db = Db::open(dir.path())?;
    assert!(matches!(db.profile(VICTIM), Err(Error::Corruption { .. })));
    assert!(db.profile(OTHER)?.is_some());
    // An export lists the other customer and reports the damaged record, leaving nothing out
    // silently.
    let items: Vec<Result<persona::Profile>> = db.profiles().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
    Ok(())
}

#[test]
fn stores_made_with_the_same_key_and_events_are_identical() -> Result<()> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut models = Vec::new();
    for dir in [&a, &b] {
        let db = common::config(dir.path()).open()?;
        populate(&db)?;
        let mut ids: Vec<String> = db
            .store()
            .scan_profiles()
            .map(|r| r.map(|(id, _)| id))
            .collect::<Result<_>>()?;
        ids.sort();
        assert_eq!(ids, vec![OTHER.to_string(), VICTIM.to_string()]);
        models.push(format!("{:?}", db.model()));
    }
    assert_eq!(models[0], models[1]);
    let _ = T0;
    Ok(())
}

#[test]
fn rotating_the_key_keeps_every_customer_and_retires_the_old_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, key) = keyed_store(dir.path(), "k.key")?;
    let config = || Config::new(&data).key_file(&key);
    let db = config().open()?;
    let before = db.profile(VICTIM)?.expect("stored");
    db.close()?;
    drop(db);
    let old = dir.path().join("old.key");
    std::fs::copy(&key, &old)?;

    let rotation = persona::rotate_key(&config(), None)?;
    assert_eq!(rotation.data_keys, 2);
    assert_eq!(rotation.key_file, key);
    assert_ne!(std::fs::read(&key)?, std::fs::read(&old)?, "a new key");
    assert!(!dir.path().join("k.key.new").exists());
    // The new key opens the store with everything in it; the old one does not.
    let db = config().open()?;
    assert_eq!(db.profile(VICTIM)?, Some(before));
    db.close()?;
    drop(db);
    let e = match Config::new(&data).key_file(&old).open() {
        Ok(_) => panic!("the old key opened the store"),
        Err(e) => e,
    };
    assert!(matches!(e, Error::Key(_)), "{e}");

    // To a file of its own, which must not exist.
    let third = dir.path().join("third.key");
    let r = persona::rotate_key(&config(), Some(&third))?;
    assert_eq!(r.key_file, third);
    let e = persona::rotate_key(&Config::new(&data).key_file(&third), Some(&third)).unwrap_err();
    assert!(
        matches!(&e, Error::Key(m) if m.contains("already exists")),
        "{e}"
    );
    let db = Config::new(&data).key_file(&third).open()?;
    assert_eq!(db.profile_count(), 2);
    db.close()?;
    drop(db);
    // A plain store has no key to rotate.
    let plain = dir.path().join("plain");
    Config::new(&plain)
        .encryption(Encryption::Off)
        .open()?
        .close()?;
    let e = persona::rotate_key(&Config::new(&plain), None).unwrap_err();
    assert!(
        matches!(&e, Error::Key(m) if m.contains("not encrypted")),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_rotation_cut_short_after_the_slots_were_rewrapped_is_finished_at_the_next_open() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let (data, key) = keyed_store(dir.path(), "k.key")?;
    let config = || Config::new(&data).key_file(&key);
    // Rotate to a side file, then put the old key back in place and the new one beside it, as
    // a crash between re-wrapping the slots and renaming the key file leaves them.
    let old = std::fs::read(&key)?;
    let side = dir.path().join("side.key");
    persona::rotate_key(&config(), Some(&side))?;
    std::fs::rename(&side, dir.path().join("k.key.new"))?;
    std::fs::write(&key, &old)?;
    let db = config().open()?;
    assert_eq!(db.profile_count(), 2);
    db.close()?;
    drop(db);
    assert!(
        !dir.path().join("k.key.new").exists(),
        "the rename was finished"
    );
    assert_ne!(std::fs::read(&key)?, old);
    assert!(persona::check_store_with(&config())?.is_clean());
    Ok(())
}

#[test]
fn compact_encrypt_turns_a_plain_store_into_an_encrypted_one_with_the_same_content() -> Result<()> {
    use persona::testing::storage::compact::{encrypt, CopyCompression};
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let db = Config::new(&data).encryption(Encryption::Off).open()?;
    db.trigger_add("first", &["FIRST_PURCHASE", "COOLDOWN", "0"])?;
    populate(&db)?;
    let before = [db.profile(VICTIM)?, db.profile(OTHER)?];
    let firings = db.read_triggers(0, 100)?;
    let model = format!("{:?}", db.model());
    db.close()?;
    drop(db);
    assert!(!holding(&data, VICTIM)?.is_empty());

    let report = encrypt(&data, 64, CopyCompression::AsStored(0), &Config::new(&data))?;
    assert!(report.keys > 0);
    assert!(data.join("store.key").exists() && data.join("keys.slots").exists());
    for needle in PLANTED {
        assert_eq!(
            holding(&data, needle)?,
            Vec::<String>::new(),
            "{needle} in clear"
        );
    }
    assert!(persona::check_store(&data)?.is_clean());
    let db = Db::open(&data)?;
    assert!(db.store().is_encrypted());
    assert_eq!([db.profile(VICTIM)?, db.profile(OTHER)?], before);
    assert_eq!(db.read_triggers(0, 100)?, firings);
    assert_eq!(format!("{:?}", db.model()), model);
    // Erasing now is final at once, as in a store created encrypted, the names only the victim
    // gave included (their holder became the victim's token in the copy).
    assert_eq!(db.erase_report(VICTIM)?.catalogue_names_dropped, 2);
    assert!(db.profile(VICTIM)?.is_none());
    assert!(!models_name(&db, PLANTED_ITEM) && models_name(&db, "novel"));
    db.close()?;
    drop(db);
    let e = encrypt(&data, 64, CopyCompression::AsStored(0), &Config::new(&data)).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("encrypted already")),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_record_whose_data_key_is_lost_is_reported_never_replaced() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Config::new(dir.path()).open()?;
    populate(&db)?;
    db.close()?;
    drop(db);
    // The slot file cut at a slot boundary (here: right after its header): the length is
    // valid, the keys are gone.
    let slots = dir.path().join("keys.slots");
    let whole = std::fs::read(&slots)?;
    std::fs::write(&slots, &whole[..128])?;
    let db = Db::open(dir.path())?;
    assert!(matches!(db.profile(VICTIM), Err(Error::Corruption { .. })));
    let e = db
        .ingest(Event::new(VICTIM, T0 + 100 * DAY, EventKind::View))
        .unwrap_err();
    assert!(matches!(e, Error::Corruption { .. }), "{e}");
    // An erase still removes what is left of them.
    assert!(db.erase(VICTIM)?);
    db.close()?;
    drop(db);
    let report = persona::check_store(dir.path())?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("data key is gone")),
        "{:?}",
        report.problems
    );
    Ok(())
}

#[test]
fn key_slots_without_the_store_s_encryption_metadata_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    Config::new(dir.path())
        .encryption(Encryption::Off)
        .open()?
        .close()?;
    std::fs::write(dir.path().join("keys.slots"), b"whatever")?;
    match Db::open(dir.path()) {
        Err(Error::Corruption { key, .. }) => assert_eq!(key, "metadata crypt"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    Ok(())
}

#[test]
fn a_rotation_cut_before_its_check_value_was_recorded_opens_with_the_new_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, key) = keyed_store(dir.path(), "k.key")?;
    let old_meta = common::store::raw(&data, |db| db.get(b"Mcrypt"))?.expect("encrypted");
    let side = dir.path().join("side.key");
    persona::rotate_key(&Config::new(&data).key_file(&key), Some(&side))?;
    // As if the process died after re-wrapping the slots, before recording the check value.
    common::store::raw(&data, |db| db.insert(b"Mcrypt", old_meta.clone()))?;
    let e = match Config::new(&data).key_file(&key).open() {
        Ok(_) => panic!("the old key opened the store"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, Error::Key(m) if m.contains("key rotate")),
        "{e}"
    );
    let db = Config::new(&data).key_file(&side).open()?;
    assert_eq!(db.profile_count(), 2);
    db.close()?;
    drop(db);
    assert!(persona::check_store_with(&Config::new(&data).key_file(&side))?.is_clean());
    Ok(())
}

#[test]
fn check_changes_no_file_of_an_encrypted_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, key) = keyed_store(dir.path(), "k.key")?;
    // A leftover of a rotation cut short, which an open (not a check) removes.
    std::fs::write(data.join("keys.slots.new"), b"partial")?;
    let before = common::store::files(&data)?;
    let report = persona::check_store_with(&Config::new(&data).key_file(&key))?;
    assert!(report.is_clean(), "{:?}", report.problems);
    let after = common::store::files(&data)?;
    let slots = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .filter(|(n, _)| n.contains("keys.slots"))
            .cloned()
            .collect()
    };
    assert_eq!(slots(&after), slots(&before));
    Ok(())
}

/// A used key slot that no longer unwraps (damaged on disk) does not stop the store: only its
/// customer's records read as corrupt, `check` names the slot, and erasing them zeroes it.
#[test]
fn a_damaged_key_slot_costs_only_its_own_customer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, key) = (dir.path().join("store"), dir.path().join("store.key"));
    let config = || Config::new(&data).key_file(&key);
    let token = {
        let db = config().open()?;
        db.trigger_add("first", &["FIRST_PURCHASE", "COOLDOWN", "0"])?;
        populate(&db)?;
        // (`OTHER`'s purchases came a week behind the watermark, too late to fire: a third
        // customer's firing is the one that must stay.)
        db.ingest(Event::new("third", T0 + 20 * DAY, EventKind::Purchase).with_value(5.0))?;
        let k = db.store().profile_key_of(VICTIM);
        k[1..17].to_vec()
    };
    // The outbox chunks holding a firing of the victim's (their token is stored with it).
    let firing_keys = |db: &Db| -> Result<usize> {
        let mut n = 0;
        for item in db.store().sled().scan_prefix(b"T") {
            let (_, v) = item.map_err(|e| Error::Io(std::io::Error::other(e)))?;
            n += usize::from(v.windows(16).any(|w| w == &token[..]));
        }
        Ok(n)
    };
    // Find the victim's slot by its token and damage its wrapped key.
    let slots = data.join("keys.slots");
    let mut bytes = std::fs::read(&slots)?;
    let at = (128..bytes.len())
        .step_by(128)
        .find(|&s| bytes[s + 1..s + 17] == token[..])
        .expect("the victim has a slot");
    bytes[at + 40] ^= 0xff;
    std::fs::write(&slots, &bytes)?;

    let report = persona::check_store_with(&config())?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("does not unwrap")),
        "{:?}",
        report.problems
    );
    let db = config().open()?;
    let e = db.profile(VICTIM).unwrap_err();
    assert!(matches!(&e, Error::Corruption { .. }), "{e}");
    assert!(db.profile(OTHER)?.is_some());
    assert!(
        db.ingest(Event::new(VICTIM, T0 + 100 * DAY, EventKind::View))
            .is_err(),
        "their record is never overwritten"
    );
    assert_eq!(firing_keys(&db)?, 1, "the victim's firing is in the outbox");
    let readable = db.read_triggers(0, 100)?;
    assert!(readable.iter().all(|f| f.customer != VICTIM) && !readable.is_empty());
    assert!(db.erase(VICTIM)?);
    assert_eq!(
        firing_keys(&db)?,
        0,
        "the firing that did not open went with them"
    );
    assert_eq!(
        db.read_triggers(0, 100)?,
        readable,
        "the others' firings stay"
    );
    let after = std::fs::read(&slots)?;
    assert!(after[at..at + 128].iter().all(|&b| b == 0), "zeroed");
    db.close()?;
    drop(db);
    let report = persona::check_store_with(&config())?;
    assert!(report.is_clean(), "{:?}", report.problems);
    Ok(())
}
