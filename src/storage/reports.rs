//! The import's reports kept in the data directory, and what an erase takes out of them.
//!
//! `persona import` lists the rows it rejected and the duplicates it skipped, by default in
//! [`REJECTS`] and [`DUPLICATES`] in the data directory. A duplicate, and a row the store
//! refused, is listed with its customer, quoted (`customer "c-17"`), so an erase can find the
//! lines of the customers it erased and take them out ([`scrub`]): after an erase, no file of
//! the data directory names them. A row the parser rejected is listed with the field that was
//! wrong and its value, not with its customer: such a line is left (it may quote a value of
//! theirs, the bad one).

use crate::error::Result;
use std::io::Write;
use std::path::Path;

/// The default name of the import's list of rejected rows, in the data directory.
pub const REJECTS: &str = "rejects.txt";
/// The default name of the import's list of duplicate rows, in the data directory.
pub const DUPLICATES: &str = "duplicates.txt";

/// Rewrites the reports in `dir` without the lines that name one of `customer_ids` as their
/// customer (`customer "id"`, or `customer: "id"` in a store's refusal); returns how many
/// lines went. A report is replaced atomically
/// (written aside, fsynced, renamed over the old one, the directory fsynced), keeping its
/// permissions; a report without such lines is left untouched.
///
/// # Errors
/// [`crate::Error::Io`] if a report cannot be read or rewritten (the old one is then intact).
pub(crate) fn scrub(dir: &Path, customer_ids: &[String]) -> Result<usize> {
    if customer_ids.is_empty() {
        return Ok(0);
    }
    let needles: Vec<String> = customer_ids
        .iter()
        .flat_map(|id| [format!("customer {id:?}"), format!("customer: {id:?}")])
        .collect();
    let names = |line: &[u8]| {
        needles
            .iter()
            .any(|n| line.windows(n.len()).any(|w| w == n.as_bytes()))
    };
    let mut dropped = 0;
    for name in [REJECTS, DUPLICATES] {
        let path = dir.join(name);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let mut kept = Vec::with_capacity(text.len());
        let mut gone = 0;
        for line in text.split_inclusive(|&b| b == b'\n') {
            if names(line) {
                gone += 1;
            } else {
                kept.extend_from_slice(line);
            }
        }
        if gone == 0 {
            continue;
        }
        let tmp = dir.join(format!("{name}.erase"));
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.set_permissions(std::fs::metadata(&path)?.permissions())?;
            f.write_all(&kept)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        dropped += gone;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lines_naming_an_erased_customer_go() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let dups = "line 3: duplicate: event_id \"e1\" of customer \"c1\" was already applied\n\
                    line 4: duplicate: event_id \"c1\" of customer \"c10\" was already applied\n\
                    line 5: duplicate: an identical row of customer \"c1\" was already applied";
        std::fs::write(dir.path().join(DUPLICATES), dups)?;
        std::fs::write(dir.path().join(REJECTS), "line 2: field timestamp: bad\n")?;
        let rejects_before = std::fs::metadata(dir.path().join(REJECTS))?.modified()?;
        assert_eq!(scrub(dir.path(), &["c1".to_string()])?, 2);
        let left = std::fs::read_to_string(dir.path().join(DUPLICATES))?;
        assert_eq!(
            left, "line 4: duplicate: event_id \"c1\" of customer \"c10\" was already applied\n",
            "an event id equal to an erased customer's id is not their line"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(REJECTS))?.modified()?,
            rejects_before,
            "a report naming nobody erased is not rewritten"
        );
        assert_eq!(scrub(dir.path(), &["c1".to_string()])?, 0);
        // A row the store refused names its customer too.
        let refused = "line 7: customer \"c1\": invalid argument customer: \"c1\" has not \
                       consented to profiling (consent.profiling is false)\n\
                       line 8: field timestamp: bad\n";
        std::fs::write(dir.path().join(REJECTS), refused)?;
        assert_eq!(scrub(dir.path(), &["c1".to_string()])?, 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(REJECTS))?,
            "line 8: field timestamp: bad\n"
        );
        let empty = tempfile::tempdir()?;
        assert_eq!(scrub(empty.path(), &["c1".to_string()])?, 0, "no reports");
        Ok(())
    }
}
