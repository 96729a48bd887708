//! `/ca` and `/ca.pem`: the county CA certificate, and how to make the hall's browsers trust it, in
//! Chinese. Public, and served over plain HTTP too (before a browser trusts the CA it cannot reach
//! HTTPS without a warning): what protects the download is the fingerprint people compare with the
//! one on paper from the county.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::common::render;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/ca", get(install_page))
        .route("/ca.pem", get(ca_pem))
}

#[derive(Template)]
#[template(path = "ca.html")]
struct CaPage {
    node_name: String,
    fingerprint: String,
}

async fn install_page(State(state): State<SharedState>) -> Response {
    match state.county_ca() {
        Some(ca) => render(&CaPage {
            node_name: state.identity.name.clone(),
            fingerprint: ca.fingerprint.clone(),
        }),
        None => not_enrolled(),
    }
}

async fn ca_pem(State(state): State<SharedState>) -> Response {
    match state.county_ca() {
        Some(ca) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"county-ca.crt\"",
                ),
            ],
            ca.pem.clone(),
        )
            .into_response(),
        None => not_enrolled(),
    }
}

fn not_enrolled() -> Response {
    (
        StatusCode::NOT_FOUND,
        "本站点尚未接入县级平台，没有县级根证书。",
    )
        .into_response()
}
