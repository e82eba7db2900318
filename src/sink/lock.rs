//! Exclusive locks on the output, so that runs sharing it never lose or double a row.
//!
//! Two kinds, both named by [`LockName`]: a job's lock, held for a whole run (one run of a job
//! at a time: its coverage, watermark and staging are its own), and an owner's lock, held while
//! one hour of that account's files is merged and published (two jobs of one account never
//! replace each other's hour). A local folder uses advisory file locks under
//! `_voxlake/locks/` (the kernel drops them when a process dies, even by SIGKILL). An object
//! store uses a lease object written with conditional puts (`If-None-Match: *` to take it,
//! `If-Match` to renew, take over an expired one, or give it back): a holder renews it every
//! third of its time; a run killed while holding it blocks others until it expires.

use std::io::{Read, Seek, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::store::Lake;
use crate::error::{Error, Result};
use crate::stop::Stop;

/// Folder of the lock files and lease objects.
pub const LOCKS_DIR: &str = "_voxlake/locks";

/// How often a waiting run looks at a held lock again.
const POLL: Duration = Duration::from_millis(100);

/// How long after taking a lease it is read back to confirm it is ours.
const SETTLE: Duration = Duration::from_millis(50);

/// The same, after taking over a lease whose holder died or let it expire: every run waiting
/// for it takes it at once then, so a late second write is likelier; it happens only after a
/// crash, so a longer wait costs little.
const SETTLE_AFTER_EXPIRY: Duration = Duration::from_millis(500);

/// What a lock protects: one job's runs, or one owner's (account's) hour commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockName(String);

impl LockName {
    /// The lock of a job's runs (its name is checked: letters, digits, `-`, `_`).
    pub fn job(job: &str) -> LockName {
        LockName(format!("job-{job}"))
    }

    /// The lock of an owner's hour commits (an account SID or a Telnyx key's fingerprint).
    pub fn owner(owner: &str) -> LockName {
        LockName(format!("owner-{owner}"))
    }

    fn file(&self) -> String {
        format!("{LOCKS_DIR}/{}.lock", self.0)
    }
}

/// Who holds a lock: written into it, shown to whoever finds it held.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    /// The holding run.
    pub run_id: String,
    /// Its job.
    pub job: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    #[serde(default)]
    pub host: String,
    /// Which machine boot and process namespace its pid belongs to (empty where unknown):
    /// a holder with ours whose process is gone is dead, whatever its lease says.
    #[serde(default)]
    pub machine: String,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

impl Holder {
    /// This process, for a run.
    pub fn this_process(run_id: &str, job: &str) -> Holder {
        Holder {
            run_id: run_id.to_string(),
            job: job.to_string(),
            pid: std::process::id(),
            host: read_trimmed("/proc/sys/kernel/hostname"),
            machine: this_machine(),
            since: Utc::now().to_rfc3339(),
        }
    }

    fn shown(&self) -> String {
        let host = if self.host.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.host)
        };
        format!(
            "run {} (job {}, pid {}{host}) since {}",
            self.run_id, self.job, self.pid, self.since
        )
    }

    /// True when the holder ran on this machine (same boot, same process namespace) and its
    /// process is gone: a run killed by SIGKILL or a crash leaves its lease behind.
    fn is_dead_here(&self) -> bool {
        let here = this_machine();
        !here.is_empty() && self.machine == here && !process_alive(self.pid)
    }
}

/// Whether a process of this machine is running: it exists and is not a zombie (a process
/// that ended but whose parent has not reaped it yet).
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state …`: the command may hold spaces and parentheses; the state follows
    // the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This boot and process namespace (Linux); empty elsewhere, so no lease is ever judged dead
/// by its pid there.
fn this_machine() -> String {
    let boot = read_trimmed("/proc/sys/kernel/random/boot_id");
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.is_empty() || namespace.is_empty() {
        return String::new();
    }
    format!("{boot}/{namespace}")
}

/// How long an object-store lease lasts without renewal.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTime(pub Duration);

impl Default for LeaseTime {
    fn default() -> Self {
        LeaseTime(Duration::from_secs(30))
    }
}

/// The content of a lease object.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LeaseFile {
    version: u32,
    holder: Holder,
    /// Unique to one taking of the lease: read back after it is written, so that a store whose
    /// conditional writes race (two takers both passing the check) still has one holder.
    #[serde(default)]
    token: String,
    /// When the lease lapses unless renewed (RFC 3339).
    expires_at: String,
    /// Given back: anyone may take it.
    released: bool,
}

impl LeaseFile {
    fn free_at(&self, now: DateTime<Utc>) -> bool {
        self.released
            || DateTime::parse_from_rfc3339(&self.expires_at)
                .map(|t| t.with_timezone(&Utc) <= now)
                .unwrap_or(true)
    }
}

/// A held lock; dropping it releases a file lock, `release` gives a lease back.
pub struct Lock {
    name: LockName,
    kind: LockKind,
}

enum LockKind {
    /// An advisory lock on an open file: released when the file is closed.
    File(#[allow(dead_code)] std::fs::File),
    /// A lease object, renewed by a background task.
    Lease(Arc<LeaseState>, tokio::task::JoinHandle<()>),
}

/// What the renewing task and the holder share.
struct LeaseState {
    lake: Lake,
    path: String,
    time: LeaseTime,
    holder: Holder,
    token: String,
    /// The lease object's version we wrote last; None once lost.
    version: Mutex<Option<UpdateVersion>>,
    /// When the last renewal (or the take) succeeded.
    renewed: Mutex<Instant>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("name", &self.name).finish()
    }
}

/// Whether to wait for a held lock or fail at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Fail with a message naming the holder.
    No,
    /// Wait until it is free (or the run is stopped).
    Yes,
}

impl Lock {
    /// Takes the lock `name` on the lake for `holder`.
    pub async fn take(
        lake: &Lake,
        name: LockName,
        holder: &Holder,
        wait: Wait,
        lease: LeaseTime,
        stop: &Stop,
    ) -> Result<Lock> {
        let mut announced = false;
        loop {
            let attempt = match lake.local_root() {
                Some(root) => try_file_lock(root, &name, holder)?,
                None => try_lease(lake, &name, holder, lease).await?,
            };
            match attempt {
                Attempt::Taken(kind) => return Ok(Lock { name, kind }),
                Attempt::Held(other) => {
                    let shown = other
                        .map(|h| h.shown())
                        .unwrap_or_else(|| "another run".into());
                    if wait == Wait::No {
                        return Err(Error::Locked(format!(
                            "output {}: {} is held by {shown}; wait for it to finish, or pass --wait to queue behind it",
                            lake.shown(),
                            name.0
                        )));
                    }
                    if !announced {
                        tracing::info!(lock = %name.0, holder = %shown, "waiting for the lock");
                        announced = true;
                    }
                }
            }
            // Jittered, so that waiters do not all try at once when the lock comes free.
            let pause = POLL.mul_f64(0.5 + rand::random::<f64>());
            tokio::select! {
                () = stop.wait() => return Err(stop.error()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Fails if the lock may no longer be ours (a lease whose renewals failed for most of its
    /// time, or that another run took over): nothing may be committed then.
    pub fn check(&self) -> Result<()> {
        self.watch().check()
    }

    /// A handle that checks this lock from elsewhere (a file lock always holds).
    pub fn watch(&self) -> LockWatch {
        match &self.kind {
            LockKind::File(_) => LockWatch(None),
            LockKind::Lease(state, _) => LockWatch(Some(Arc::clone(state))),
        }
    }

    /// Gives the lock back.
    pub async fn release(self) {
        if let LockKind::Lease(state, task) = self.kind {
            task.abort();
            let version = state.version.lock().ok().and_then(|mut v| v.take());
            if let Some(version) = version {
                let file = lease_file(&state.holder, &state.token, state.time, true);
                if let Err(e) = put_lease(&state.lake, &state.path, &file, version).await {
                    tracing::debug!(lock = %self.name.0, error = %e, "could not give the lease back; it expires");
                }
            }
        }
    }
}

/// Checks a held lock: see [`Lock::check`].
#[derive(Clone, Default)]
pub struct LockWatch(Option<Arc<LeaseState>>);

impl LockWatch {
    /// Fails if the lock may no longer be ours.
    pub fn check(&self) -> Result<()> {
        let Some(state) = &self.0 else {
            return Ok(());
        };
        let lost = state.version.lock().map(|v| v.is_none()).unwrap_or(true);
        let age = state
            .renewed
            .lock()
            .map(|r| r.elapsed())
            .unwrap_or(Duration::MAX);
        if lost || age > state.time.0 * 2 / 3 {
            return Err(Error::Locked(format!(
                "the lease {} lapsed (renewals failed); stopping before committing anything more",
                state.path
            )));
        }
        Ok(())
    }
}

enum Attempt {
    Taken(LockKind),
    Held(Option<Holder>),
}

fn lock_error(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Store(format!("lock {}: {e}", path.display()))
}

/// A local advisory lock: the file stays (deleting a locked file would let a second process
/// lock a new one by the same name); its content names the holder.
fn try_file_lock(root: &std::path::Path, name: &LockName, holder: &Holder) -> Result<Attempt> {
    let path = root.join(name.file());
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| lock_error(folder, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| lock_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let text = serde_json::to_vec(holder).unwrap_or_default();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(&text))
                .map_err(|e| lock_error(&path, e))?;
            Ok(Attempt::Taken(LockKind::File(file)))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Attempt::Held(serde_json::from_str(&text).ok()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(lock_error(&path, e)),
    }
}

fn lease_file(holder: &Holder, token: &str, time: LeaseTime, released: bool) -> LeaseFile {
    let expires = Utc::now() + chrono::Duration::from_std(time.0).unwrap_or_default();
    LeaseFile {
        version: 1,
        holder: holder.clone(),
        token: token.to_string(),
        expires_at: expires.to_rfc3339(),
        released,
    }
}

fn store_error(what: &str, path: &str, e: &object_store::Error) -> Error {
    Error::Store(format!(
        "output store: {what} {path}: {}",
        super::store::describe_store_error(e)
    ))
}

/// Writes a lease object conditionally; `Ok(None)` when the condition failed.
async fn put_lease_with(
    lake: &Lake,
    path: &str,
    file: &LeaseFile,
    mode: PutMode,
) -> Result<Option<UpdateVersion>> {
    let body = serde_json::to_vec(file).unwrap_or_default();
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match lake
        .object_store()
        .put_opts(&lake.object_path(path), PutPayload::from(body), options)
        .await
    {
        Ok(result) => Ok(Some(UpdateVersion {
            e_tag: result.e_tag,
            version: result.version,
        })),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(None),
        Err(e @ object_store::Error::NotImplemented { .. }) => Err(Error::Input(format!(
            "output {}: the store does not support conditional writes, which voxlake needs to lock the output: {}",
            lake.shown(),
            super::store::describe_store_error(&e)
        ))),
        Err(e) => Err(store_error("writing", path, &e)),
    }
}

async fn put_lease(
    lake: &Lake,
    path: &str,
    file: &LeaseFile,
    version: UpdateVersion,
) -> Result<Option<UpdateVersion>> {
    put_lease_with(lake, path, file, PutMode::Update(version)).await
}

/// One try at a lease: create it, or take it over when it was given back or has expired.
async fn try_lease(
    lake: &Lake,
    name: &LockName,
    holder: &Holder,
    time: LeaseTime,
) -> Result<Attempt> {
    let path = name.file();
    let token = format!("{:016x}", rand::random::<u64>());
    let file = lease_file(holder, &token, time, false);
    let mut settle = SETTLE;
    let taken = match put_lease_with(lake, &path, &file, PutMode::Create).await? {
        Some(version) => Some(version),
        None => {
            let Some((current, version)) = read_lease(lake, &path).await? else {
                // Gone between the two requests: try again.
                return Ok(Attempt::Held(None));
            };
            if !current.free_at(Utc::now()) && !current.holder.is_dead_here() {
                return Ok(Attempt::Held(Some(current.holder)));
            }
            if !current.released {
                settle = SETTLE_AFTER_EXPIRY;
            }
            put_lease(lake, &path, &file, version).await?
        }
    };
    let Some(version) = taken else {
        return Ok(Attempt::Held(None));
    };
    // Read back, a moment later: on a store whose conditional writes are not atomic (the check
    // and the write are separate steps, as in s3s-fs), a second taker that passed the check
    // with us writes within that moment; the lease is whoever's token it holds then.
    tokio::time::sleep(settle).await;
    match read_lease(lake, &path).await? {
        Some((current, _)) if current.token == token => {}
        Some((current, _)) => return Ok(Attempt::Held(Some(current.holder))),
        None => return Ok(Attempt::Held(None)),
    }
    let state = Arc::new(LeaseState {
        lake: lake.clone(),
        path,
        time,
        holder: holder.clone(),
        token,
        version: Mutex::new(Some(version)),
        renewed: Mutex::new(Instant::now()),
    });
    let task = tokio::spawn(renew(Arc::clone(&state)));
    Ok(Attempt::Taken(LockKind::Lease(state, task)))
}

async fn read_lease(lake: &Lake, path: &str) -> Result<Option<(LeaseFile, UpdateVersion)>> {
    let result = match lake.object_store().get(&lake.object_path(path)).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_error("reading", path, &e)),
    };
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    let bytes = result
        .bytes()
        .await
        .map_err(|e| store_error("reading", path, &e))?;
    // An unreadable lease (a foreign or torn object) counts as expired.
    let file = serde_json::from_slice(&bytes).unwrap_or(LeaseFile {
        version: 1,
        holder: Holder::this_process("unknown", "unknown"),
        token: String::new(),
        expires_at: String::new(),
        released: true,
    });
    Ok(Some((file, version)))
}

/// Renews the lease every third of its time until aborted; a renewal refused because another
/// run took the lease over marks it lost.
async fn renew(state: Arc<LeaseState>) {
    loop {
        tokio::time::sleep(state.time.0 / 3).await;
        let Some(version) = state.version.lock().ok().and_then(|v| v.clone()) else {
            return;
        };
        let file = lease_file(&state.holder, &state.token, state.time, false);
        match put_lease(&state.lake, &state.path, &file, version).await {
            Ok(Some(next)) => {
                if let Ok(mut v) = state.version.lock() {
                    *v = Some(next);
                }
                if let Ok(mut r) = state.renewed.lock() {
                    *r = Instant::now();
                }
            }
            Ok(None) => {
                tracing::error!(lease = %state.path, "another run took the lease over; committing stops");
                if let Ok(mut v) = state.version.lock() {
                    *v = None;
                }
                return;
            }
            Err(e) => tracing::warn!(lease = %state.path, error = %e, "could not renew the lease"),
        }
    }
}
