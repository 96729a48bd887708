//! `/cases/new`: find the item, then one form with the applicant, the materials checklist, delivery
//! and note. The form carries a one-time token, so a double click files one case.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tongban_runtime::store::Created;
use tongban_shared::case::{ApplicantInput, IntakeRequest, DELIVERY_METHODS};
use tongban_shared::catalog::Item;
use tongban_shared::FieldError;

use super::common::{csrf_checked_form, field, limit_text, page_error, render, PageCtx};
use crate::accounts;
use crate::error::AppError;
use crate::extract::{check_request_key, CurrentUser, WebUser};
use crate::service;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/cases/new", get(new_case_page).post(new_case_submit))
}

struct ItemChoice {
    code: String,
    name: String,
    department_full: String,
    kind: &'static str,
    limit: String,
    village: String,
    /// Text the page's live filter matches against.
    search: String,
}

#[derive(Template)]
#[template(path = "choose_item.html")]
struct ChooseItemPage {
    page: PageCtx,
    q: String,
    catalog_version: u32,
    /// The window's service area, when it receives only that area's items.
    area: Option<String>,
    items: Vec<ItemChoice>,
}

/// Item facts as the form and receipt print them.
struct ItemView {
    code: String,
    name: String,
    department_full: String,
    kind: &'static str,
    limit: String,
    legal: String,
    village: String,
}

fn village_text(village: &str) -> String {
    match village {
        "办结" => "村级可直接办结".to_string(),
        _ => "村级代收，报送上级办理".to_string(),
    }
}

impl ItemView {
    fn of(item: &Item) -> ItemView {
        ItemView {
            code: item.code.clone(),
            name: item.name.clone(),
            department_full: item.department_full.clone(),
            kind: item.kind.label(),
            limit: limit_text(item.kind, item.promised_days, item.day_unit),
            legal: limit_text(item.kind, item.legal_days, item.day_unit),
            village: village_text(&item.village),
        }
    }
}

struct MaterialChoice {
    id: String,
    name: String,
    required: bool,
    form: String,
    copies: u32,
    note: String,
    checked: bool,
}

/// Values typed into the form, echoed back when something must be corrected.
#[derive(Default)]
struct FormValues {
    kind: String,
    name: String,
    id_number: String,
    phone: String,
    credit_code: String,
    legal_rep: String,
    address: String,
    delivery: String,
    note: String,
}

/// Field errors by JSON path, for the template.
struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    fn msg(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn class(&self, field: &str) -> &'static str {
        if self.0.iter().any(|e| e.field == field) {
            "has-error"
        } else {
            ""
        }
    }
}

#[derive(Template)]
#[template(path = "case_form.html")]
struct CaseFormPage {
    page: PageCtx,
    item: ItemView,
    materials: Vec<MaterialChoice>,
    deliveries: &'static [&'static str],
    v: FormValues,
    errors: Vec<FieldError>,
    err: FieldErrors,
    form_token: String,
}

#[derive(Deserialize)]
struct NewCaseParams {
    item: Option<String>,
    q: Option<String>,
}

/// The items to choose from: those matching `q`, and for a window of a service area only the items
/// that area receives (the rest would be refused with a 403).
fn choose_page(state: &SharedState, user: &CurrentUser, q: &str) -> Response {
    let catalog = state.catalog();
    let area = crate::access::window_area(state.identity.tier, &user.role);
    let items = catalog
        .search(q)
        .filter(|i| area.is_none_or(|a| i.received_at(a)))
        .map(|i| ItemChoice {
            code: i.code.clone(),
            name: i.name.clone(),
            department_full: i.department_full.clone(),
            kind: i.kind.label(),
            limit: limit_text(i.kind, i.promised_days, i.day_unit),
            village: village_text(&i.village),
            search: format!(
                "{} {} {} {}",
                i.name,
                i.department,
                i.department_full,
                i.keywords.join(" ")
            ),
        })
        .collect();
    render(&ChooseItemPage {
        page: PageCtx::new(state, user),
        q: q.to_string(),
        catalog_version: catalog.version,
        area: area.map(str::to_string),
        items,
    })
}

fn form_page(
    state: &SharedState,
    user: &CurrentUser,
    item: &Item,
    v: FormValues,
    checked: &[String],
    errors: Vec<FieldError>,
    form_token: String,
) -> Response {
    let page = CaseFormPage {
        page: PageCtx::new(state, user),
        item: ItemView::of(item),
        materials: item
            .materials
            .iter()
            .map(|m| MaterialChoice {
                id: m.id.clone(),
                name: m.name.clone(),
                required: m.required,
                form: m.form.clone(),
                copies: m.copies,
                note: m.note.clone(),
                checked: checked.contains(&m.id),
            })
            .collect(),
        deliveries: &DELIVERY_METHODS,
        err: FieldErrors(errors.clone()),
        errors,
        v,
        form_token,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, render(&page)).into_response()
}

async fn new_case_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(params): Query<NewCaseParams>,
) -> Response {
    let catalog = state.catalog();
    match params.item.as_deref().and_then(|c| catalog.item(c)) {
        Some(item) => match crate::access::require_area(state.identity.tier, &user, item) {
            Err(refused) => page_error(refused),
            Ok(()) => form_page(
                &state,
                &user,
                item,
                FormValues {
                    kind: "1".into(),
                    // At the county window the applicant is there and collects at the window.
                    delivery: if state.identity.tier == tongban_shared::Tier::County {
                        "窗口领取".into()
                    } else {
                        "代办员送达".into()
                    },
                    ..Default::default()
                },
                &[],
                Vec::new(),
                accounts::random_token(),
            ),
        },
        None => choose_page(&state, &user, params.q.as_deref().unwrap_or("")),
    }
}

async fn new_case_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let token = field(&pairs, "form_token").to_string();
    let key = match check_request_key(&token) {
        Ok(k) => format!("form-{k}"),
        Err(e) => return page_error(e),
    };
    let v = FormValues {
        kind: field(&pairs, "kind").to_string(),
        name: field(&pairs, "name").to_string(),
        id_number: field(&pairs, "id_number").to_string(),
        phone: field(&pairs, "phone").to_string(),
        credit_code: field(&pairs, "credit_code").to_string(),
        legal_rep: field(&pairs, "legal_rep").to_string(),
        address: field(&pairs, "address").to_string(),
        delivery: field(&pairs, "delivery").to_string(),
        note: field(&pairs, "note").to_string(),
    };
    let materials: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "materials")
        .map(|(_, v)| v.clone())
        .collect();
    let item_code = field(&pairs, "item_code").to_string();
    let req = IntakeRequest {
        item_code: item_code.clone(),
        applicant: ApplicantInput {
            kind: v.kind.clone(),
            name: v.name.clone(),
            id_number: v.id_number.clone(),
            phone: v.phone.clone(),
            credit_code: v.credit_code.clone(),
            legal_rep: v.legal_rep.clone(),
            address: v.address.clone(),
        },
        materials: materials.clone(),
        delivery: v.delivery.clone(),
        note: v.note.clone(),
    };
    match service::file_case(&state, &user, req, Some(key)).await {
        Ok(Created::New(s) | Created::Replayed(s)) => {
            Redirect::to(&format!("/cases/{}?created=1", s.case_no)).into_response()
        }
        Err(AppError::Invalid(errors)) => match state.catalog().item(&item_code) {
            Some(item) => form_page(&state, &user, item, v, &materials, errors, token),
            None => page_error(AppError::Invalid(errors)),
        },
        Err(e) => page_error(e),
    }
}
