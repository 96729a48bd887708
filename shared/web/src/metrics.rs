//! `GET /metrics` (Prometheus text format) and the middleware that times every request. The registry
//! and its families are `tongban_runtime::metrics`; this module is only their HTTP side.
//!
//! Access: a scraper on the same PC (loopback) needs no account, the usual way Prometheus or an agent
//! beside the server reads it; from anywhere else the request needs an account of any role, or
//! answers 401. The figures hold no personal data, but they say how busy a station is and which
//! nodes exist, which is not for the hall's network at large.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tongban_runtime::metrics::{Metrics, CONTENT_TYPE};

use crate::error::AppError;
use crate::extract::{source_address, ApiUser};
use crate::state::{blocking, SharedState};

/// The row of `access::COUNTY_ENDPOINTS` that names this endpoint.
pub const ENDPOINT: &str = "GET /metrics";

pub fn routes() -> Router<SharedState> {
    Router::new().route("/metrics", get(scrape))
}

/// Whether a request came from this PC. An IPv4 address mapped into IPv6 counts as what it maps; a
/// request without a recorded address (an in-process router) does not count as local.
pub fn from_loopback(source: Option<IpAddr>) -> bool {
    source.is_some_and(|ip| ip.to_canonical().is_loopback())
}

async fn scrape(State(state): State<SharedState>, request: Request) -> Result<Response, AppError> {
    let (mut parts, _) = request.into_parts();
    if !from_loopback(source_address(&parts.extensions)) {
        let ApiUser(user) = ApiUser::from_request_parts(&mut parts, &state).await?;
        // At the county the endpoint table names who may use it (every role); at a node every
        // account is the station's own.
        if state.identity.tier == tongban_shared::Tier::County {
            crate::access::require_endpoint(&user, ENDPOINT)?;
        }
    }
    let st = state.clone();
    let text = blocking(move || {
        st.metrics
            .scrape(&st.store, st.site.pending_up())
            .map_err(AppError::internal)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Times each request into the latency histogram, labelled with the route template (never the raw
/// path: case numbers would make one series per case) and the status class.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    metrics.http_request(
        method,
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The method as a label: the few the app serves by name, any other (a client may send any token)
/// as `other`, so the label stays bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_pc_counts_as_loopback() {
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(from_loopback(local.parse().ok()), "{local}");
        }
        for remote in ["192.168.1.20", "10.0.0.1", "::ffff:192.168.1.20", "fe80::1"] {
            assert!(!from_loopback(remote.parse().ok()), "{remote}");
        }
        assert!(!from_loopback(None), "an unknown source is not local");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&custom), "other");
    }
}
