//! `/cases/{no}/receipt`: the printable A4 receipt (受理凭证) in three parts, each with a QR code.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tongban_shared::case::CaseDoc;
use tongban_shared::catalog::ItemKind;

use super::common::{case_limit, page_error, render};
use crate::error::AppError;
use crate::extract::WebUser;
use crate::service;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/cases/{case_no}/receipt", get(receipt))
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    c: CaseDoc,
    /// (copy name, who keeps it, full certificate number shown, query password shown)
    parts: [(&'static str, &'static str, bool, bool); 3],
    received: String,
    masked_cert: String,
    received_materials: Vec<String>,
    missing_materials: String,
    promise: String,
    qr_svg: String,
    /// The county's public self-query page, printed beside the password (empty: none yet).
    query_url: String,
}

fn mask(cert: &str) -> String {
    let chars: Vec<char> = cert.chars().collect();
    if chars.len() <= 10 {
        return cert.to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}********{tail}")
}

/// What the receipt's QR code says: the county's self-query page with the number filled in, where
/// the county has one, else the bare number. The password stays on paper only, never in the code a
/// phone camera reads.
fn qr_target(query_url: &str, case_no: &str) -> String {
    let url = query_url.trim();
    if url.is_empty() {
        case_no.to_string()
    } else {
        let join = if url.contains('?') { '&' } else { '?' };
        format!("{url}{join}no={case_no}")
    }
}

fn qr_svg(text: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(AppError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(120, 120)
        .build();
    // The renderer emits a standalone XML document; inside HTML only the <svg> element belongs.
    Ok(svg
        .find("<svg")
        .map(|i| svg[i..].to_string())
        .unwrap_or(svg))
}

fn promise_text(state: &SharedState, c: &CaseDoc) -> String {
    if c.item.kind() == ItemKind::Immediate || c.item.promised_days == 0 {
        return "即办件：县级窗口收到材料后当场办结".to_string();
    }
    let days = c.item.promised_days;
    let Some(created) = c.created_at() else {
        return case_limit(c);
    };
    let from = created.date_naive();
    let estimate = c
        .item
        .day_unit()
        .due_date(from, days, &state.calendar())
        .unwrap_or(from);
    format!(
        "{}，自县级受理次日起计算（若当日受理，预计{}前办结）",
        case_limit(c),
        estimate.format("%Y年%m月%d日")
    )
}

async fn receipt(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(case_no): Path<String>,
) -> Response {
    let loaded = match service::case_no(&case_no) {
        Ok(no) => service::load_case_for(&state, &user, &no).await,
        Err(e) => Err(e),
    };
    let c = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return page_error(e),
    };
    let qr = match qr_svg(&qr_target(&state.catalog().county.query_url, &c.case_no)) {
        Ok(svg) => svg,
        Err(e) => return page_error(e),
    };
    let received_materials = c
        .materials
        .iter()
        .filter(|m| m.collected)
        .map(|m| format!("{}（{}{}份）", m.name, m.form, m.copies))
        .collect();
    let missing_materials = c
        .materials
        .iter()
        .filter(|m| !m.collected)
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join("；");
    render(&ReceiptPage {
        parts: [
            ("第一联", "申请人留存", true, true),
            (
                "第二联",
                // At the county the window took it in: its copy is the window's.
                if c.agent.at_county() {
                    "窗口留存"
                } else {
                    "代办员留存"
                },
                false,
                false,
            ),
            ("第三联", "随件存档", true, false),
        ],
        query_url: state.catalog().county.query_url.clone(),
        received: c
            .created_at()
            .map(|t| t.format("%Y年%m月%d日").to_string())
            .unwrap_or_default(),
        masked_cert: mask(&c.applicant.cert_no),
        received_materials,
        missing_materials,
        promise: promise_text(&state, &c),
        qr_svg: qr,
        c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_numbers_are_masked_on_the_agent_copy() {
        assert_eq!(mask("11010519491231002X"), "110105********002X");
    }

    #[test]
    fn the_qr_code_points_to_the_countys_self_query_page_when_it_has_one() {
        let no = "420222103201-20261127-0001";
        assert_eq!(qr_target("", no), no);
        assert_eq!(
            qr_target("https://zwfw.yangxin.gov.cn/query", no),
            format!("https://zwfw.yangxin.gov.cn/query?no={no}")
        );
        assert_eq!(
            qr_target("https://x.cn/q?from=receipt", no),
            format!("https://x.cn/q?from=receipt&no={no}")
        );
    }

    #[test]
    fn qr_is_an_inline_svg_element() {
        let svg = qr_svg("420222103201-20261127-0001").unwrap();
        assert!(svg.starts_with("<svg"));
    }
}
