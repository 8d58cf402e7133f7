//! Shared by the integration tests that reach under the store: direct access to a closed
//! store's sled database, as a disk or a bug would touch it.

use std::path::Path;

/// Runs `f` on the closed store's sled database (same settings as Persona's), then flushes.
/// sled releases its file lock from a background thread a moment after the last handle of a
/// closed store is dropped; on a loaded machine that moment can be long, so wait for it (as
/// `Store::open` does) instead of failing the test.
pub fn raw<T>(dir: &Path, f: impl FnOnce(&sled::Db) -> sled::Result<T>) -> sled::Result<T> {
    let mut attempts = 0;
    let db = loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(8 * 1024 * 1024)
            .open()
        {
            Err(e) if persona::testing::storage::is_lock_error(&e) && attempts < 250 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    let out = f(&db)?;
    db.flush()?;
    Ok(out)
}

/// Asserts that `persona check` finds nothing wrong with the closed store in `dir`, listing
/// what it found if it does.
pub fn assert_clean(dir: &Path) -> persona::Result<()> {
    let report = super::check_store(dir)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}

/// Every file under `dir` (recursively) with its bytes, read now: what someone who copies
/// the data directory gets.
pub fn files(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path)?));
            }
        }
    }
    Ok(out)
}

/// The files under `dir` (recursively) whose bytes hold `needle`.
pub fn files_holding(dir: &Path, needle: &str) -> std::io::Result<Vec<String>> {
    Ok(files(dir)?
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(name, _)| name)
        .collect())
}
