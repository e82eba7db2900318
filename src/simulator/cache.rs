//! A bounded store of rendered per-call pages (Insights events and metrics, REST call
//! events), for benchmarks: a page asked for again is copied out instead of generated and
//! serialised again, so the simulator's own work stays out of the way of the client it serves
//! on the same cores. Only used while no faults are set; the pages it holds do not depend on
//! the clock.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::StatusCode;

use super::auth::Principal;
use super::reply::Reply;
use super::routes::Route;

/// A page as first served: its body and the row count the stats are told.
struct Page {
    body: Vec<u8>,
    rows: Option<(&'static str, u64)>,
}

/// Rendered pages by who asked and the request's path and query, up to a number of bytes.
pub(crate) struct PageCache {
    limit: usize,
    held: RwLock<Held>,
}

#[derive(Default)]
struct Held {
    bytes: usize,
    pages: HashMap<(usize, String), Page>,
}

impl PageCache {
    /// A cache of up to `limit` bytes of bodies; `None` for a limit of 0.
    pub(crate) fn new(limit: usize) -> Option<PageCache> {
        (limit > 0).then(|| PageCache {
            limit,
            held: RwLock::new(Held::default()),
        })
    }

    /// Whether the route's pages may be kept: per-call lists, whose bodies depend on the
    /// request alone.
    pub(crate) fn keeps(route: &Route) -> bool {
        matches!(
            route,
            Route::InsightsEvents { .. } | Route::InsightsMetrics { .. } | Route::CallEvents { .. }
        )
    }

    /// A copy of the page kept for this request, if any.
    pub(crate) fn get(&self, who: Principal, target: &str) -> Option<Reply> {
        let held = self.held.read().ok()?;
        let page = held.pages.get(&(who.0, target.to_string()))?;
        Some(Reply {
            status: StatusCode::OK,
            body: page.body.clone(),
            rows: page.rows,
            retry_after: None,
            www_authenticate: false,
        })
    }

    /// Keeps a 200 page while there is room (once full, later pages are generated each time).
    pub(crate) fn put(&self, who: Principal, target: &str, reply: &Reply) {
        if reply.status != StatusCode::OK || reply.retry_after.is_some() {
            return;
        }
        let Ok(mut held) = self.held.write() else {
            return;
        };
        if held.bytes + reply.body.len() > self.limit {
            return;
        }
        held.bytes += reply.body.len();
        let page = Page {
            body: reply.body.clone(),
            rows: reply.rows,
        };
        held.pages.insert((who.0, target.to_string()), page);
    }
}

#[cfg(test)]
mod tests {
    use super::{PageCache, Principal, Reply};
    use crate::simulator::{Faults, SimConfig, SimHandle, start};

    #[test]
    fn pages_beyond_the_limit_are_not_kept_and_each_asker_has_its_own() {
        assert!(PageCache::new(0).is_none());
        let cache = PageCache::new(10).expect("a cache");
        let page = |bytes: usize| Reply::rows(vec![b'x'; bytes], "insights_metrics", 1);
        cache.put(Principal(0), "/a", &page(6));
        cache.put(Principal(0), "/b", &page(6));
        let kept = cache.get(Principal(0), "/a").expect("kept");
        assert_eq!(
            (kept.body.len(), kept.rows),
            (6, Some(("insights_metrics", 1)))
        );
        assert!(cache.get(Principal(0), "/b").is_none());
        assert!(cache.get(Principal(1), "/a").is_none());
    }

    async fn get(sim: &SimHandle, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", sim.base_url()))
            .basic_auth(format!("AC{}", "0".repeat(32)), Some("simulator-token"))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    #[tokio::test]
    async fn kept_pages_are_served_as_rendered_and_faults_pass_them_by() {
        let plain = start(SimConfig::default(), 0).await.expect("simulator");
        let cached = start(
            SimConfig {
                page_cache_bytes: 1 << 20,
                ..SimConfig::default()
            },
            0,
        )
        .await
        .expect("simulator");
        let sid = plain.model().calls()[0].sid.clone();
        let page = format!("/v1/Voice/{sid}/Metrics?PageSize=7");
        let (status, rendered) = get(&plain, &page).await;
        assert_eq!(status, 200);
        // The same page, its links on the other simulator's origin.
        let rendered = rendered.replace(&plain.base_url(), &cached.base_url());
        for _ in 0..3 {
            assert_eq!(get(&cached, &page).await, (200, rendered.clone()));
        }
        let stats = cached.stats();
        assert_eq!(stats.requests, 3);
        assert_eq!(stats.rows_served.get("insights_metrics"), Some(&21));
        // A page of another size is another page.
        let (_, other) = get(&cached, &format!("/v1/Voice/{sid}/Metrics?PageSize=3")).await;
        assert_ne!(other, rendered);
        // With faults set, every request meets them, kept page or not.
        cached.set_faults(Faults {
            error_429_ratio: 1.0,
            ..Faults::default()
        });
        assert_eq!(get(&cached, &page).await.0, 429);
        cached.set_faults(Faults::default());
        assert_eq!(get(&cached, &page).await, (200, rendered));
        plain.shutdown().await;
        cached.shutdown().await;
    }
}
