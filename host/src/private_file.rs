//! Files only the host's user may read: the development signing key and the compiled
//! component cache both need a new file that is private (0600 whatever the umask), fully on
//! disk, and written under a name no other writer uses, before it is linked or renamed into
//! place. Kept here so the two cannot drift apart in that care.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new private file beside `path`, named for this process and a random
/// number, synced to disk; returns its name for the caller to link or rename into place.
pub fn write_beside(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = path.with_extension(format!(
        "tmp{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(tmp)
}
