//! Where a lake is and how it is written: the output location (a folder or an S3 prefix), the
//! store client's settings, and the Parquet settings. The job plan builds them; the sink takes
//! them; neither depends on the other's types.

use std::path::PathBuf;

use url::Url;

use crate::error::{Error, Result};

/// Where the lake is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A local folder.
    Local(PathBuf),
    /// An S3 bucket and key prefix (no leading or trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, possibly empty.
        prefix: String,
    },
}

impl Output {
    /// Parses a path, `file://…` or `s3://bucket/prefix`.
    pub fn parse(text: &str) -> Result<Output> {
        let bad = |why: &str| Error::Input(format!("output {text:?}: {why}"));
        if text.trim().is_empty() {
            return Err(bad("is empty"));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') || bucket.contains(':') {
                return Err(bad(
                    "credentials or ports do not belong in the URL; use AWS_* variables",
                ));
            }
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(bad("the bucket name is not valid"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|s| s == ".." || s == ".") {
                return Err(bad("the prefix may not contain . or .. segments"));
            }
            return Ok(Output::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if text.starts_with("file:") {
            return file_url_path(text)
                .map(Output::Local)
                .map_err(|why| bad(&why));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(bad(&format!(
                "{scheme}:// is not supported; use a path, file:// or s3://"
            )));
        }
        Ok(Output::Local(PathBuf::from(text)))
    }

    /// For messages: the path or URL (never credentials: none are allowed in it).
    pub fn display(&self) -> String {
        match self {
            Output::Local(path) => path.display().to_string(),
            Output::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Output::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The local path of a `file:` URL by RFC 8089: `file:///abs`, `file://localhost/abs` and
/// `file:/abs` name a local absolute path; another host is refused (voxlake writes only here).
fn file_url_path(text: &str) -> std::result::Result<PathBuf, String> {
    let url = Url::parse(text).map_err(|e| format!("not a file URL ({e})"))?;
    match url.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(host) => {
            return Err(format!(
                "file:// URLs name this machine's files; host {host:?} is not this machine \
                 (use file:///path or file://localhost/path)"
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a file URL takes no query or fragment".into());
    }
    // `to_file_path` decodes %-escapes and refuses what is not a local absolute path.
    let mut local = url.clone();
    let _ = local.set_host(None);
    local
        .to_file_path()
        .map_err(|()| "not a local absolute path".to_string())
}

/// How a lake's tables are laid out and committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    /// Hive-partitioned Parquet folders, published by voxlake's journal (DESIGN §5).
    Parquet,
    /// Delta Lake tables partitioned by `date`, each commit one Delta transaction.
    Delta,
}

impl TableFormat {
    /// Parses the job key `format`.
    pub fn parse(text: &str) -> Result<TableFormat> {
        match text {
            "parquet" => Ok(TableFormat::Parquet),
            "delta" => Ok(TableFormat::Delta),
            other => Err(Error::Input(format!(
                "format = {other:?}: use \"parquet\" or \"delta\""
            ))),
        }
    }

    /// The key's value.
    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        }
    }
}

/// How the store's own HTTP client behaves (S3): per-request timeout and retries.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Timeout of one request.
    pub timeout: std::time::Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Longest time spent retrying one request.
    pub retry_timeout: std::time::Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            timeout: std::time::Duration::from_secs(30),
            max_retries: 5,
            retry_timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// Parquet settings.
#[derive(Clone, Debug)]
pub struct ParquetSettings {
    /// zstd level.
    pub zstd_level: i32,
    /// Rows per row group at most.
    pub row_group_rows: usize,
    /// Rows per file at most.
    pub max_rows_per_file: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(
            Output::parse("s3://bucket-1/a/b/").expect("s3"),
            Output::S3 {
                bucket: "bucket-1".into(),
                prefix: "a/b".into()
            }
        );
        assert!(Output::parse("s3://key:secret@bucket/x").is_err());
        assert!(Output::parse("gs://bucket/x").is_err());
        assert_eq!(
            Output::parse("file:///tmp/x").expect("file"),
            Output::Local("/tmp/x".into())
        );
        // RFC 8089: `localhost` is this machine; no host is this machine; others are refused.
        assert_eq!(
            Output::parse("file://localhost/tmp/x").expect("localhost"),
            Output::Local("/tmp/x".into())
        );
        assert_eq!(
            Output::parse("file:/tmp/a%20b").expect("no authority"),
            Output::Local("/tmp/a b".into())
        );
        let e = Output::parse("file://elsewhere/tmp/x").expect_err("another host");
        assert!(e.to_string().contains("is not this machine"), "{e}");
    }
}
