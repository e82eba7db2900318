//! The one HTTP client: authentication, a rate limiter and a concurrency cap per API, retries
//! with backoff and `Retry-After`, a timeout on every request, a cap on page size, and host
//! pinning so credentials go only to the configured origin.

pub mod client;
pub mod pace;
pub mod retry;

pub use client::{Api, ApiClient, ApiConfig, Auth, HttpError, HttpStats};
pub use retry::RetryPolicy;
