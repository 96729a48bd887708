//! `/catalog/items/{code}` (admin): edits one item's 受理材料标准化手册 — legal basis, fee, process,
//! service area, and each material's form, copies, signature and seal, basis, sample and note — and
//! shows what the edit changes on the catalogue page, where the admin confirms and publishes it as
//! the next version (the same preview and publish as an imported file).

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tongban_shared::catalog::{Catalog, Item};
use tongban_shared::manual::Fee;
use tongban_web::extract::WebUser;
use tongban_web::pages::common::{csrf_checked_form, field, PageCtx};
use tongban_web::AppError;

use super::catalog::{allowed, checked, html, render, show_changes};
use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new().route("/catalog/items/{code}", get(edit_page).post(edit_submit))
}

struct MaterialRow {
    id: String,
    name: String,
    form: String,
    copies: u32,
    sign_seal: String,
    basis: String,
    sample: String,
    note: String,
}

#[derive(Template)]
#[template(path = "catalog_item.html")]
struct EditPage {
    page: PageCtx,
    code: String,
    name: String,
    version: u32,
    areas: Vec<String>,
    area: String,
    authorised: Vec<String>,
    legal_basis: String,
    fee_amount: String,
    fee_rule: String,
    fee_basis: String,
    process: String,
    materials: Vec<MaterialRow>,
    error: Option<String>,
}

/// The fee amount as the editor's field shows it (empty: none).
fn yuan(fen: u64) -> String {
    if fen == 0 {
        String::new()
    } else {
        tongban_shared::manual::yuan_digits(fen)
    }
}

/// The editor's amount, in fen.
fn fen(text: &str) -> Result<u64, String> {
    tongban_shared::manual::parse_yuan(text).map_err(|e| format!("收费{e}"))
}

fn page_for(
    state: &HubState,
    user: &tongban_web::extract::CurrentUser,
    catalog: &Catalog,
    item: &Item,
) -> EditPage {
    let fee = item.fee.clone().unwrap_or_default();
    EditPage {
        page: PageCtx::new(&state.app, user),
        code: item.code.clone(),
        name: item.name.clone(),
        version: catalog.version,
        areas: catalog.county.service_areas.clone(),
        area: item.area.clone(),
        authorised: item.authorised_areas.clone(),
        legal_basis: item.legal_basis.join("\n"),
        fee_amount: yuan(fee.amount_fen),
        fee_rule: fee.rule,
        fee_basis: fee.basis,
        process: item.process.join("\n"),
        materials: item
            .materials
            .iter()
            .map(|m| MaterialRow {
                id: m.id.clone(),
                name: m.name.clone(),
                form: m.form.clone(),
                copies: m.copies,
                sign_seal: m.sign_seal.clone(),
                basis: m.basis.clone(),
                sample: m.sample.clone(),
                note: m.note.clone(),
            })
            .collect(),
        error: None,
    }
}

fn not_found(code: &str) -> AppError {
    AppError::NotFound(format!("目录里没有编码为“{code}”的事项。"))
}

fn show(page: EditPage) -> Result<Response, AppError> {
    Ok(Html(page.render().map_err(AppError::internal)?).into_response())
}

async fn edit_page(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    Path(code): Path<String>,
) -> Result<Response, AppError> {
    allowed(&user)?;
    let catalog = state.app.catalog();
    let item = catalog.item(&code).ok_or_else(|| not_found(&code))?;
    show(page_for(&state, &user, &catalog, item))
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The item as the form says it should be.
fn edited(item: &Item, pairs: &[(String, String)]) -> Result<Item, String> {
    let get = |k: &str| field(pairs, k).trim().to_string();
    let mut new = item.clone();
    new.area = get("area");
    new.authorised_areas = pairs
        .iter()
        .filter(|(k, v)| k == "authorised" && *v != new.area)
        .map(|(_, v)| v.clone())
        .collect();
    new.legal_basis = lines(field(pairs, "legal_basis"));
    new.process = lines(field(pairs, "process"));
    let amount_fen = fen(&get("fee_amount"))?;
    let (rule, basis) = (get("fee_rule"), get("fee_basis"));
    new.fee = (amount_fen > 0 || !rule.is_empty() || !basis.is_empty()).then_some(Fee {
        amount_fen,
        rule,
        basis,
    });
    for m in &mut new.materials {
        let get = |what: &str| get(&format!("m.{}.{what}", m.id));
        m.form = get("form");
        m.copies = get("copies")
            .parse()
            .ok()
            .filter(|c| (1..=20).contains(c))
            .ok_or_else(|| format!("材料「{}」的份数应为1到20。", m.name))?;
        m.sign_seal = get("sign_seal");
        m.basis = get("basis");
        m.sample = get("sample");
        m.note = get("note");
        if m.form.is_empty() {
            return Err(format!(
                "材料「{}」需要填写形式（原件、复印件等）。",
                m.name
            ));
        }
    }
    Ok(new)
}

/// `POST /catalog/items/{code}`: the edited item in a copy of the catalogue, checked like an
/// imported file; the catalogue page then shows what changes, to confirm and publish.
async fn edit_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    allowed(&user)?;
    let pairs = csrf_checked_form(&user, body)?;
    let catalog = state.app.catalog();
    let item = catalog.item(&code).ok_or_else(|| not_found(&code))?;
    let mut page = render(&state, &user);
    let outcome = edited(item, &pairs).and_then(|new_item| {
        let mut next = (*catalog).clone();
        if let Some(slot) = next.items.iter_mut().find(|i| i.code == code) {
            *slot = new_item;
        }
        let json = serde_json::to_string(&next).map_err(|e| e.to_string())?;
        checked(&json, page.next_version)
    });
    match outcome {
        Ok(new) => {
            show_changes(&mut page, new);
            html(page)
        }
        Err(why) => {
            let mut again = page_for(&state, &user, &catalog, item);
            again.error = Some(format!("未保存：{why}"));
            show(again)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fen;

    #[test]
    fn amounts_are_read_as_yuan_with_at_most_two_decimals() {
        assert_eq!(fen(""), Ok(0));
        assert_eq!(fen("20"), Ok(2000));
        assert_eq!(fen("12.5"), Ok(1250));
        assert_eq!(fen("0.05"), Ok(5));
        for bad in ["12.505", "-3", "1e3", ".5", "二十", "99999999999999999999"] {
            assert!(fen(bad).is_err(), "{bad}");
        }
    }
}
