//! `Lake`: the output location behind object_store (a local folder now; nothing here assumes
//! a local filesystem), with the few operations the sink and the state store need.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::output::{Output, StoreSettings};

/// A folder's own store, the store its absolute paths are in, and its URL.
pub(crate) type FolderStores = (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, url::Url);

/// The output: a store and a key prefix under it.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    shown: String,
    /// The folder, for a local output (only to tidy empty staging folders).
    local_root: Option<std::path::PathBuf>,
}

fn store_error(what: &str, path: &str, e: object_store::Error) -> Error {
    Error::Store(format!(
        "output store: {what} {path}: {}",
        describe_store_error(&e)
    ))
}

/// The store's error without anything that could carry a secret (object_store errors from
/// cloud stores can include request details).
pub(crate) fn describe_store_error(e: &object_store::Error) -> String {
    match e {
        object_store::Error::NotFound { .. } => "not found".into(),
        object_store::Error::PermissionDenied { .. } => "permission denied".into(),
        object_store::Error::Unauthenticated { .. } => "not authenticated".into(),
        other => {
            let text = other.to_string();
            text.chars().take(500).collect()
        }
    }
}

/// The S3 endpoint from the environment, if one is set: plain http only to loopback.
fn check_s3_endpoint() -> Result<()> {
    for name in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"] {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        let url = url::Url::parse(&value)
            .map_err(|e| Error::Input(format!("{name}: not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::Input(format!(
                "{name}: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )));
        }
        if url.scheme() == "http" && !crate::http::client::is_loopback_host(&url) {
            return Err(Error::Input(format!(
                "{name}: plain http:// is only allowed to loopback; use https://"
            )));
        }
        let allow_http =
            std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if url.scheme() == "http" && !allow_http {
            return Err(Error::Input(format!(
                "{name} is plain http://: plain http needs AWS_ALLOW_HTTP=true (loopback only)"
            )));
        }
    }
    Ok(())
}

/// True when the environment names credentials itself (keys, or a container or web-identity
/// source), rather than leaving object_store to ask the instance metadata service.
fn credentials_in_env() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

fn s3_store(bucket: &str, settings: &StoreSettings) -> Result<Arc<dyn ObjectStore>> {
    check_s3_endpoint()?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: settings.max_retries,
            retry_timeout: settings.retry_timeout,
        })
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", settings.timeout.as_millis()),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            format!(
                "{}ms",
                settings
                    .timeout
                    .min(std::time::Duration::from_secs(10))
                    .as_millis()
            ),
        );
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    let store = builder.build().map_err(|e| {
        Error::Input(format!(
            "output s3://{bucket}: {}",
            describe_store_error(&e)
        ))
    })?;
    Ok(Arc::new(store))
}

impl Lake {
    /// Opens the output; a local folder is created if missing; an S3 bucket is checked (it
    /// exists, the credentials may list it) before anything else is done.
    pub async fn open(output: &Output, settings: &StoreSettings) -> Result<Lake> {
        match output {
            Output::Local(path) => {
                if path.exists() && !path.is_dir() {
                    return Err(Error::Input(format!(
                        "output {} exists and is not a folder",
                        path.display()
                    )));
                }
                std::fs::create_dir_all(path).map_err(|e| {
                    Error::Input(format!(
                        "output {}: cannot create the folder: {e}",
                        path.display()
                    ))
                })?;
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| Error::Input(format!("output {}: {e}", path.display())))?
                    .with_automatic_cleanup(true);
                Ok(Lake {
                    store: Arc::new(store),
                    prefix: None,
                    shown: path.display().to_string(),
                    local_root: Some(path.clone()),
                })
            }
            Output::S3 { bucket, prefix } => {
                let lake = Lake::from_store(s3_store(bucket, settings)?, prefix, &output.display());
                lake.check_reachable(bucket).await?;
                Ok(lake)
            }
        }
    }

    /// Writes and deletes a probe object under `_voxlake/`: a read-only folder, a full disk or
    /// a bucket that refuses writes fails here, before any API request.
    pub async fn check_writable(&self) -> Result<()> {
        let probe = format!("_voxlake/probe-{:08x}", rand::random::<u32>());
        let written = self
            .store
            .put(&self.path(&probe), PutPayload::from_static(b"voxlake"))
            .await;
        if let Err(e) = written {
            return Err(Error::Input(format!(
                "output {} is not writable: {}",
                self.shown,
                describe_store_error(&e)
            )));
        }
        self.delete(&probe).await
    }

    /// One listing under `_voxlake/`: the bucket exists and the credentials work.
    async fn check_reachable(&self, bucket: &str) -> Result<()> {
        let probe = self.path("_voxlake");
        match self.store.list_with_delimiter(Some(&probe)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                tracing::debug!(error = %text, "the bucket check failed");
                let problem = if text.contains("NoSuchBucket")
                    || matches!(e, object_store::Error::NotFound { .. })
                {
                    "the bucket does not exist".to_string()
                } else if text.contains("SignatureDoesNotMatch")
                    || text.contains("InvalidAccessKeyId")
                    || text.contains("AccessDenied")
                    || matches!(
                        e,
                        object_store::Error::PermissionDenied { .. }
                            | object_store::Error::Unauthenticated { .. }
                    )
                {
                    "access denied: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)".to_string()
                } else if text.contains("169.254.169.254") && !credentials_in_env() {
                    "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     or run where an instance or container role provides them): the instance \
                     metadata service gave none"
                        .to_string()
                } else {
                    format!("cannot reach it: {}", describe_store_error(&e))
                };
                Err(Error::Input(format!(
                    "output {}: bucket {bucket}: {problem}",
                    self.shown
                )))
            }
        }
    }

    /// A lake over any store (tests and other schemes).
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: &str, shown: &str) -> Lake {
        let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
        Lake {
            store,
            prefix,
            shown: shown.to_string(),
            local_root: None,
        }
    }

    /// Removes a local folder whole, including the `#` temporary files of uploads a killed
    /// process left (the local store does not list them). Object stores have no folders:
    /// nothing to do (their incomplete uploads are invisible; a lifecycle rule clears them).
    pub fn remove_local_folder(&self, folder: &str) {
        if let Some(root) = &self.local_root {
            let _ = std::fs::remove_dir_all(root.join(folder));
        }
    }

    /// Removes the temporary files (`name#N`) a local store leaves when a process is killed
    /// mid-write, in `folder` and below, whose names start with `prefix`; the caller holds
    /// the lock of whatever writes them.
    pub fn remove_local_temp_files(&self, folder: &str, prefix: &str) {
        if let Some(root) = &self.local_root {
            remove_temp_files(&root.join(folder), prefix);
        }
    }

    /// The names of the folders directly under a local `folder` (empty for object stores,
    /// which have no folders).
    pub fn local_subfolders(&self, folder: &str) -> Vec<String> {
        let Some(root) = &self.local_root else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// The local folder behind the lake, if it is one.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The store behind the lake.
    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// A path relative to the output as the store's path.
    pub(crate) fn object_path(&self, relative: &str) -> Path {
        self.path(relative)
    }

    /// What a Delta table at `folder` is opened with: a store rooted at the folder, the
    /// store its paths are absolute in (the filesystem's root locally, the bucket on S3), and
    /// the folder's URL (`file:///…/` or `s3://bucket/prefix/…/`).
    pub(crate) fn folder_stores(&self, folder: &str) -> Result<FolderStores> {
        let prefixed: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(
            Arc::clone(&self.store),
            self.path(folder),
        ));
        let bad = |e: String| Error::Internal(format!("the URL of {folder}: {e}"));
        match &self.local_root {
            Some(root) => {
                let absolute = std::fs::canonicalize(root)
                    .map_err(|e| Error::Store(format!("output {}: {e}", self.shown)))?
                    .join(folder);
                let url = url::Url::from_directory_path(&absolute)
                    .map_err(|()| bad("not an absolute path".into()))?;
                Ok((prefixed, Arc::new(LocalFileSystem::new()), url))
            }
            None => {
                let url = url::Url::parse(&format!("{}/{folder}/", self.shown))
                    .map_err(|e| bad(e.to_string()))?;
                Ok((prefixed, Arc::clone(&self.store), url))
            }
        }
    }

    /// Creates a folder of a local output (object stores have none to create).
    pub fn create_local_folder(&self, folder: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            std::fs::create_dir_all(root.join(folder)).map_err(|e| {
                Error::Store(format!("output {}: creating {folder}: {e}", self.shown))
            })?;
        }
        Ok(())
    }

    /// Whether anything at all is stored under `folder`.
    pub async fn exists_under(&self, folder: &str) -> Result<bool> {
        let prefix = self.path(folder);
        let mut listing = self.store.list(Some(&prefix));
        match listing.try_next().await {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(store_error("listing", folder, e)),
        }
    }

    /// Removes the empty folders a local store leaves behind under `folder` (object stores
    /// have no folders, so there is nothing to do for them).
    pub fn remove_empty_folders(&self, folder: &str) {
        if let Some(root) = &self.local_root {
            remove_empty_dirs(&root.join(folder));
        }
    }

    /// The output as the user gave it, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn path(&self, relative: &str) -> Path {
        match &self.prefix {
            Some(prefix) => Path::from(format!("{prefix}/{relative}")),
            None => Path::from(relative),
        }
    }

    fn relative(&self, path: &Path) -> String {
        let text = path.as_ref();
        match &self.prefix {
            Some(prefix) => text
                .strip_prefix(prefix.as_ref())
                .map(|rest| rest.trim_start_matches('/').to_string())
                .unwrap_or_else(|| text.to_string()),
            None => text.to_string(),
        }
    }

    /// Writes a small object whole (JSON state, journals, manifests).
    pub async fn put_json<T: Serialize>(&self, relative: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::Internal(format!("cannot encode {relative}: {e}")))?;
        self.store
            .put(&self.path(relative), PutPayload::from(body))
            .await
            .map_err(|e| store_error("writing", relative, e))?;
        self.sync_local(relative).await
    }

    /// For a local output: flushes a file just written or moved, and its folder, to disk
    /// (object_store 0.13's local store does not fsync), so that a commit point survives a
    /// power loss as well as a crash. Object stores are durable when they answer.
    async fn sync_local(&self, relative: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let path = root.join(relative);
        let sync = move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(folder) = path.parent() {
                std::fs::File::open(folder)?.sync_all()?;
            }
            Ok(())
        };
        tokio::task::spawn_blocking(sync)
            .await
            .map_err(|e| Error::Internal(format!("sync stopped: {e}")))?
            .map_err(|e| Error::Store(format!("output store: syncing {relative}: {e}")))
    }

    /// Reads a JSON object; `None` when it does not exist.
    pub async fn get_json<T: DeserializeOwned>(&self, relative: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes_opt(relative).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Lake(format!("output store: {relative} is not valid: {e}")))
    }

    /// Reads an object whole; `None` when it does not exist.
    pub async fn get_bytes_opt(&self, relative: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(relative)).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| store_error("reading", relative, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("reading", relative, e)),
        }
    }

    /// Moves an object, replacing the target. Returns false when `from` does not exist.
    pub async fn rename(&self, from: &str, to: &str) -> Result<bool> {
        match self.store.rename(&self.path(from), &self.path(to)).await {
            Ok(()) => self.sync_local(to).await.map(|()| true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error("publishing", to, e)),
        }
    }

    /// Deletes an object if it exists.
    pub async fn delete(&self, relative: &str) -> Result<()> {
        match self.store.delete(&self.path(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("deleting", relative, e)),
        }
    }

    /// Every object under a folder, as paths relative to the output.
    pub async fn list(&self, folder: &str) -> Result<Vec<String>> {
        let listed = self.list_sized(folder).await?;
        Ok(listed.into_iter().map(|(path, _)| path).collect())
    }

    /// Every object under a folder with its size, sorted by path (relative to the output).
    pub async fn list_sized(&self, folder: &str) -> Result<Vec<(String, u64)>> {
        let prefix = self.path(folder);
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| store_error("listing", folder, e))?;
        let mut listed: Vec<(String, u64)> = objects
            .iter()
            .map(|o| (self.relative(&o.location), o.size))
            .collect();
        listed.sort();
        Ok(listed)
    }

    /// The names of the folders directly under a folder (one listing with a delimiter, not
    /// every object under it).
    pub async fn subfolders(&self, folder: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(folder)))
            .await
            .map_err(|e| store_error("listing", folder, e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A streaming writer: buffered, uploaded in parts when large; nothing is visible at the
    /// path until `shutdown` completes it, and `abort` discards it. The buffer is what a file
    /// holds in memory before it streams out: 1 MiB locally, 5 MiB (S3's smallest part) for
    /// object stores, rather than object_store's 10 MiB default, since a run keeps a few files
    /// per table open at once.
    pub fn writer(&self, relative: &str) -> BufWriter {
        let capacity = if self.local_root.is_some() {
            1 << 20
        } else {
            5 << 20
        };
        BufWriter::with_capacity(Arc::clone(&self.store), self.path(relative), capacity)
    }
}

/// Depth-first removal of files whose name holds a `#` (object_store's local temporaries).
fn remove_temp_files(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_temp_files(&path, prefix);
        } else if name.contains('#') && name.starts_with(prefix) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Depth-first removal of empty directories; anything not empty stays.
fn remove_empty_dirs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
