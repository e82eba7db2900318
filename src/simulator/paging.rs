//! Query parameters and paging: Twilio's `PageSize`/`Page`/`PageToken` with its page links
//! (absolute `*_page_url` for Insights, relative `*_page_uri` for REST), Telnyx's
//! `page[number]`/`page[size]`, and the link faults (foreign host, self-loop).
//!
//! Page tokens are `PT<offset>`: the index of the page's first record. The token, when given,
//! decides the position; `Page` is only echoed back (as Twilio documents: "for client state").

use serde::Serialize;
use url::form_urlencoded;

use super::reply::{Reply, telnyx_bad_request, twilio_bad_request};

/// Decoded query parameters in request order (`StartTime%3E` and `StartTime>` alike).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub(crate) fn parse(query: Option<&str>) -> Params {
        let raw = query.unwrap_or("");
        Params(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All (name, value) pairs whose name starts with `prefix`.
    pub(crate) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A Twilio page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TwilioPage {
    /// `Page` as given (default 0).
    pub page: u64,
    /// `PageSize` (default 50, 1..=1000).
    pub size: usize,
    /// Index of the first record.
    pub offset: usize,
    /// Whether the request carried a `PageToken`.
    pub had_token: bool,
}

impl TwilioPage {
    /// The range of records of this page among `total`.
    pub(crate) fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        start..self.offset.saturating_add(self.size).min(total)
    }
}

/// Reads `PageSize`, `Page` and `PageToken`, or Twilio's 400.
pub(crate) fn twilio_page(params: &Params) -> Result<TwilioPage, Reply> {
    let size = match params.get("PageSize") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(twilio_bad_request(
                    "PageSize must be an integer from 1 to 1000",
                ));
            }
        },
    };
    let page = match params.get("Page") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| twilio_bad_request("Page must be a non-negative integer"))?,
    };
    let token = params.get("PageToken");
    let offset = match token {
        Some(t) => parse_token(t).ok_or_else(|| twilio_bad_request("Invalid PageToken"))?,
        None => usize::try_from(page)
            .unwrap_or(usize::MAX)
            .saturating_mul(size),
    };
    Ok(TwilioPage {
        page,
        size,
        offset,
        had_token: token.is_some(),
    })
}

/// `PT<offset>` → offset.
fn parse_token(token: &str) -> Option<usize> {
    token.strip_prefix("PT")?.parse().ok()
}

/// How page links are bent by faults.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkFaults {
    /// Origin to put on next links instead (`http://evil.invalid:PORT`).
    pub foreign_origin: Option<String>,
    /// The first page's next link is its own URL.
    pub looping: bool,
    /// Next links lead to this call's list (its SID in place of the path's call SID).
    pub redirect_sid: Option<String>,
}

/// The four links of a Twilio page.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    pub url: String,
    pub first: String,
    pub next: Option<String>,
    pub previous: Option<String>,
}

/// Links of `page` among `total` records: `origin` is `http://127.0.0.1:PORT` (Insights,
/// absolute) or empty (REST, relative); `filters` are echoed in order before the paging keys.
pub(crate) fn links(
    origin: &str,
    path: &str,
    filters: &[(&str, &str)],
    page: &TwilioPage,
    total: usize,
    faults: &LinkFaults,
) -> Links {
    let link = |origin: &str, number: u64, token: Option<usize>| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters {
            query.append_pair(k, v);
        }
        query.append_pair("PageSize", &page.size.to_string());
        query.append_pair("Page", &number.to_string());
        if let Some(offset) = token {
            query.append_pair("PageToken", &format!("PT{offset}"));
        }
        format!("{origin}{path}?{}", query.finish())
    };
    let url = link(origin, page.page, page.had_token.then_some(page.offset));
    let next_offset = page.offset.saturating_add(page.size);
    let next = if faults.looping && page.offset == 0 {
        Some(url.clone())
    } else if next_offset < total {
        let origin = faults.foreign_origin.as_deref().unwrap_or(origin);
        let next = link(origin, page.page.saturating_add(1), Some(next_offset));
        Some(match &faults.redirect_sid {
            Some(sid) => redirect_call(&next, path, sid),
            None => next,
        })
    } else {
        None
    };
    let previous = (page.offset > 0).then(|| {
        let number = page.page.saturating_sub(1);
        link(origin, number, Some(page.offset.saturating_sub(page.size)))
    });
    Links {
        first: link(origin, 0, None),
        url,
        next,
        previous,
    }
}

/// `link` with the call SID segment of `path` replaced by `sid`.
fn redirect_call(link: &str, path: &str, sid: &str) -> String {
    let redirected: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let is_call = segment.len() == 34 && segment.starts_with("CA");
            if is_call { sid } else { segment }
        })
        .collect();
    link.replacen(path, &redirected.join("/"), 1)
}

/// Insights `meta` (seeds 000 and 003).
#[derive(Serialize)]
struct InsightsMeta<'a> {
    page: u64,
    page_size: usize,
    first_page_url: &'a str,
    previous_page_url: Option<&'a str>,
    next_page_url: Option<&'a str>,
    key: &'a str,
    url: &'a str,
}

/// REST paging keys (seed 002).
#[derive(Serialize)]
struct RestMeta<'a> {
    first_page_uri: &'a str,
    end: usize,
    previous_page_uri: Option<&'a str>,
    uri: &'a str,
    page_size: usize,
    start: usize,
    next_page_uri: Option<&'a str>,
    page: u64,
}

/// `{"meta": {...}, "<key>": [items]}`.
pub(crate) fn insights_body<T: Serialize>(
    links: &Links,
    page: &TwilioPage,
    key: &str,
    items: &[T],
) -> serde_json::Result<Vec<u8>> {
    let meta = InsightsMeta {
        page: page.page,
        page_size: page.size,
        first_page_url: &links.first,
        previous_page_url: links.previous.as_deref(),
        next_page_url: links.next.as_deref(),
        key,
        url: &links.url,
    };
    let mut out = Vec::with_capacity(1024 + items.len() * 700);
    out.extend_from_slice(b"{\"meta\":");
    serde_json::to_writer(&mut out, &meta)?;
    out.extend_from_slice(b",");
    serde_json::to_writer(&mut out, key)?;
    out.extend_from_slice(b":");
    serde_json::to_writer(&mut out, items)?;
    out.extend_from_slice(b"}");
    Ok(out)
}

/// `{<paging keys>, "<key>": [items]}`; `start`/`end` are record indexes of the page.
pub(crate) fn rest_body<T: Serialize>(
    links: &Links,
    page: &TwilioPage,
    key: &str,
    items: &[T],
) -> serde_json::Result<Vec<u8>> {
    let start = page.offset;
    let meta = RestMeta {
        first_page_uri: &links.first,
        end: start + items.len().saturating_sub(1),
        previous_page_uri: links.previous.as_deref(),
        uri: &links.url,
        page_size: page.size,
        start,
        next_page_uri: links.next.as_deref(),
        page: page.page,
    };
    let mut out = serde_json::to_vec(&meta)?;
    out.pop();
    out.extend_from_slice(b",");
    serde_json::to_writer(&mut out, key)?;
    out.extend_from_slice(b":");
    serde_json::to_writer(&mut out, items)?;
    out.extend_from_slice(b"}");
    Ok(out)
}

/// A Telnyx page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TelnyxPage {
    /// `page[number]`, from 1.
    pub number: usize,
    /// `page[size]`, 1..=250.
    pub size: usize,
}

/// Reads `page[number]` and `page[size]`, or Telnyx's 400.
pub(crate) fn telnyx_page(params: &Params) -> Result<TelnyxPage, Reply> {
    let number = match params.get("page[number]") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(telnyx_bad_request("page[number] must be an integer >= 1")),
        },
    };
    let size = match params.get("page[size]") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=250).contains(&n) => n,
            _ => {
                return Err(telnyx_bad_request(
                    "page[size] must be an integer from 1 to 250",
                ));
            }
        },
    };
    Ok(TelnyxPage { number, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> TwilioPage {
        twilio_page(&Params::parse(Some(query))).unwrap_or(TwilioPage {
            page: 999,
            size: 0,
            offset: 0,
            had_token: false,
        })
    }

    #[test]
    fn tokens_decide_the_offset() {
        assert_eq!(page("PageSize=5&Page=2").offset, 10);
        assert_eq!(page("PageSize=5&Page=2&PageToken=PT7").offset, 7);
        assert!(twilio_page(&Params::parse(Some("PageSize=0"))).is_err());
        assert!(twilio_page(&Params::parse(Some("PageSize=1001"))).is_err());
        assert!(twilio_page(&Params::parse(Some("PageToken=x"))).is_err());
    }

    #[test]
    fn links_keep_filters_and_end() {
        let p = page("PageSize=2");
        let l = links(
            "http://h",
            "/p",
            &[("Edge", "sdk_edge")],
            &p,
            3,
            &LinkFaults::default(),
        );
        assert_eq!(l.url, "http://h/p?Edge=sdk_edge&PageSize=2&Page=0");
        assert_eq!(
            l.next.as_deref(),
            Some("http://h/p?Edge=sdk_edge&PageSize=2&Page=1&PageToken=PT2")
        );
        let last = page("PageSize=2&Page=1&PageToken=PT2");
        let l = links(
            "",
            "/p",
            &[("StartTime>", "2024-05-01")],
            &last,
            3,
            &LinkFaults::default(),
        );
        assert_eq!(l.next, None);
        assert_eq!(
            l.previous.as_deref(),
            Some("/p?StartTime%3E=2024-05-01&PageSize=2&Page=0&PageToken=PT0")
        );
    }

    #[test]
    fn link_faults_bend_next() {
        let p = page("PageSize=1");
        let foreign = LinkFaults {
            foreign_origin: Some("http://evil.invalid:9".into()),
            ..LinkFaults::default()
        };
        let l = links("", "/p", &[], &p, 3, &foreign);
        assert_eq!(
            l.next.as_deref(),
            Some("http://evil.invalid:9/p?PageSize=1&Page=1&PageToken=PT1")
        );
        let looping = LinkFaults {
            looping: true,
            ..LinkFaults::default()
        };
        let l = links("", "/p", &[], &p, 1, &looping);
        assert_eq!(l.next, Some(l.url.clone()));
        let other = "CA".to_string() + &"b".repeat(32);
        let redirect = LinkFaults {
            redirect_sid: Some(other.clone()),
            ..LinkFaults::default()
        };
        let path = format!("/v1/Voice/CA{}/Metrics", "a".repeat(32));
        let l = links("", &path, &[], &p, 3, &redirect);
        assert_eq!(
            l.next,
            Some(format!(
                "/v1/Voice/{other}/Metrics?PageSize=1&Page=1&PageToken=PT1"
            ))
        );
    }
}
