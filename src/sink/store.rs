//! `Lake`: the output location behind object_store (a local folder now; nothing here assumes
//! a local filesystem), with the few operations the sink and the state store need.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::job::Output;

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
    Error::Run(format!(
        "output store: {what} {path}: {}",
        describe_store_error(&e)
    ))
}

/// The store's error without anything that could carry a secret (object_store errors from
/// cloud stores can include request details).
fn describe_store_error(e: &object_store::Error) -> String {
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

impl Lake {
    /// Opens the output; a local folder is created if missing.
    pub async fn open(output: &Output) -> Result<Lake> {
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
                    .with_automatic_cleanup(true)
                    .with_fsync(true);
                Ok(Lake {
                    store: Arc::new(store),
                    prefix: None,
                    shown: path.display().to_string(),
                    local_root: Some(path.clone()),
                })
            }
            Output::S3 { .. } => Err(Error::Input(format!(
                "output {}: S3 output is not built yet; use a local folder",
                output.display()
            ))),
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
            .map_err(|e| Error::Run(format!("cannot encode {relative}: {e}")))?;
        self.store
            .put(&self.path(relative), PutPayload::from(body))
            .await
            .map_err(|e| store_error("writing", relative, e))?;
        Ok(())
    }

    /// Reads a JSON object; `None` when it does not exist.
    pub async fn get_json<T: DeserializeOwned>(&self, relative: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes_opt(relative).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Run(format!("output store: {relative} is not valid: {e}")))
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
            Ok(()) => Ok(true),
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
        let prefix = self.path(folder);
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| store_error("listing", folder, e))?;
        let mut paths: Vec<String> = objects.iter().map(|o| self.relative(&o.location)).collect();
        paths.sort();
        Ok(paths)
    }

    /// A streaming writer: buffered, uploaded in parts when large; nothing is visible at the
    /// path until `shutdown` completes it, and `abort` discards it.
    pub fn writer(&self, relative: &str) -> BufWriter {
        BufWriter::new(Arc::clone(&self.store), self.path(relative))
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
