//! Fault injection for the embedded store (tests only): a redb [`StorageBackend`] around the
//! real file backend whose writes or syncs fail, stall or panic on demand, as a full disk
//! (`ENOSPC`), a failing disk (`EIO`), a stuck fsync or a bug would.

use redb::backends::FileBackend;
use redb::{BackendError, Database, DatabaseError, StorageBackend};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What to break; shared between a test and every backend it opened.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every write fails with `ENOSPC`.
    pub full: AtomicBool,
    /// Every fsync fails with `EIO`.
    pub failing_sync: AtomicBool,
    /// Every fsync first sleeps this many milliseconds.
    pub slow_sync_ms: AtomicU64,
    /// The next fsync panics (a bug in the writer thread).
    pub panic_on_sync: AtomicBool,
}

impl Faults {
    /// Sets `flag`.
    pub fn set(flag: &AtomicBool, on: bool) {
        flag.store(on, Ordering::SeqCst);
    }
}

/// The file backend with [`Faults`].
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<Faults>,
}

/// An opener for [`super::embedded::EmbeddedStore::open_with`]: the file at `path`, through a
/// [`FaultyBackend`] with `faults`.
pub fn opener(
    path: &Path,
    faults: Arc<Faults>,
) -> impl Fn() -> Result<Database, DatabaseError> + Send + 'static {
    let path: PathBuf = path.to_owned();
    move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let inner = FileBackend::new(file)?;
        Database::builder().create_with_backend(FaultyBackend { inner, faults: faults.clone() })
    }
}

fn io(kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, format!("injected fault: {what}"))
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if self.faults.full.load(Ordering::SeqCst) && len > self.inner.len()? {
            return Err(io(std::io::ErrorKind::StorageFull, "no space left on device"));
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.faults.panic_on_sync.swap(false, Ordering::SeqCst) {
            panic!("injected fault: a bug in the writer");
        }
        let delay = self.faults.slow_sync_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.faults.failing_sync.load(Ordering::SeqCst) {
            return Err(io(std::io::ErrorKind::Other, "input/output error on fsync"));
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        if self.faults.full.load(Ordering::SeqCst) {
            return Err(io(std::io::ErrorKind::StorageFull, "no space left on device"));
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
