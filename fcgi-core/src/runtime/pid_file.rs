//! The pid file: the server's pid, written while it serves, for whoever manages it (an init
//! script, logrotate's `kill -USR1`, monitoring). It is written whole or not at all (a temporary
//! file beside it, renamed into place), so a reader never sees a half-written pid, and removed
//! when the server stops, however it stops: the end of `serve`, an acceptor's close, or the
//! graceful timeout's forced exit. A reload re-executes the same process, so the file, naming
//! the same pid, stays as it is.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The pid file this process wrote and has to remove: its path, the pid it holds (a forked
/// worker process inherits this record and must leave the file alone), and the file's device and
/// inode, which tell it from a file another server put there since (without reading it, which
/// a process that dropped its privileges may not).
static OURS: Mutex<Option<Record>> = Mutex::new(None);

struct Record {
    path: PathBuf,
    pid: u32,
    file: (u64, u64),
}

/// A pid file this process wrote; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path`, unless it is there already (a reload). Refused if
    /// the file names another process that is running: a second server with the same pid file
    /// is a mistake. A file naming a process that is gone is stale and replaced.
    pub fn create(path: &Path) -> io::Result<Self> {
        let pid = std::process::id();
        let context = |e: io::Error| io::Error::new(e.kind(), format!("pid_file {}: {e}", path.display()));
        match read_pid(path) {
            Some(found) if found == pid => {}
            Some(found) if is_running(found) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("pid_file {}: names process {found}, which is running", path.display()),
                ))
            }
            _ => write_atomically(path, pid).map_err(context)?,
        }
        let file = identity(path).map_err(context)?;
        *OURS.lock().unwrap_or_else(|p| p.into_inner()) = Some(Record { path: path.to_owned(), pid, file });
        Ok(Self { path: path.to_owned() })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        remove_ours();
    }
}

/// Removes the pid file this process wrote, if it still names this process (a process that
/// forked from it inherits the record but not the file; a file another server took over is its
/// own). A failure (the folder is not writable after dropping privileges) is logged.
pub fn remove_ours() {
    let Some(ours) = OURS.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    if ours.pid != std::process::id() || identity(&ours.path).ok() != Some(ours.file) {
        return;
    }
    if let Err(e) = std::fs::remove_file(&ours.path) {
        log::warn!("could not remove the pid file {}: {e}", ours.path.display());
    }
}

/// The device and inode of the file at `path`.
fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|meta| (meta.dev(), meta.ino()))
}

/// Writes `pid` to a temporary file in `path`'s folder, then renames it to `path`.
fn write_atomically(path: &Path, pid: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let temporary = path.with_file_name(format!(".{}.{pid}.tmp", name.to_string_lossy()));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(format!("{pid}\n").as_bytes())?;
        // Readable by all, whatever the umask: monitoring reads it, and so may this process
        // after it drops its privileges.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    renamed
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists (kill(2) with signal 0; EPERM: it exists, someone else's).
fn is_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 sends nothing; pid is positive (never 0 or a process group).
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_kept_across_a_reload_removed_at_the_end() {
        let dir = std::env::temp_dir().join(format!("fcgi-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.pid");
        let file = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
        // A re-executed program (same pid) finds its own pid there and keeps the file.
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::mem::forget(file);
        let file = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before);
        drop(file);
        assert!(!path.exists());

        // A stale file (a pid no process has) is replaced; a running one's is refused.
        std::fs::write(&path, "2147483646\n").unwrap();
        drop(PidFile::create(&path).unwrap());
        std::fs::write(&path, "1\n").unwrap();
        let e = PidFile::create(&path).unwrap_err();
        assert!(e.to_string().contains("names process 1, which is running"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
