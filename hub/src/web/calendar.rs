//! `/calendar` (admin): one year's holiday arrangement as a form — the State Council's notice typed in
//! row by row, checked field by field, with what was typed kept on an error. The JSON endpoint
//! (`POST /api/calendar`) stays in `county_data.rs` for scripts.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, NaiveDate};
use tongban_shared::calendar::{HolidayRange, YearTable};
use tongban_web::extract::{CurrentUser, WebUser};
use tongban_web::pages::common::{csrf_checked_form, field, PageCtx};
use tongban_web::{access, audit, blocking, AppError};

use super::state::HubState;

/// Empty rows below the filled ones, for what is to be added.
const SPARE_ROWS: usize = 3;

pub fn routes() -> Router<HubState> {
    Router::new().route("/calendar", get(calendar_page).post(calendar_submit))
}

/// One holiday row as typed.
#[derive(Clone, Default)]
struct HolidayRow {
    name: String,
    from: String,
    to: String,
    error: Option<String>,
}

/// One makeup working day as typed.
#[derive(Clone, Default)]
struct MakeupRow {
    date: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    /// Years with a table, each with its holidays and makeup days as shown to the admin.
    loaded: Vec<(i32, Vec<String>, Vec<String>)>,
    version: u32,
    year: String,
    source: String,
    holidays: Vec<HolidayRow>,
    makeup: Vec<MakeupRow>,
    message: Option<String>,
    ok: bool,
    year_error: Option<String>,
}

#[derive(serde::Deserialize)]
struct YearQuery {
    year: Option<i32>,
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The form of `year`, filled with its loaded table (or empty), plus spare rows.
fn form_of(table: Option<&YearTable>) -> (Vec<HolidayRow>, Vec<MakeupRow>, String) {
    let mut holidays: Vec<HolidayRow> = table
        .map(|t| {
            t.holidays
                .iter()
                .map(|h| HolidayRow {
                    name: h.name.clone(),
                    from: day(h.from),
                    to: day(h.to),
                    error: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut makeup: Vec<MakeupRow> = table
        .map(|t| {
            t.makeup_workdays
                .iter()
                .map(|d| MakeupRow {
                    date: day(*d),
                    error: None,
                })
                .collect()
        })
        .unwrap_or_default();
    holidays.extend(std::iter::repeat_n(HolidayRow::default(), SPARE_ROWS));
    makeup.extend(std::iter::repeat_n(MakeupRow::default(), SPARE_ROWS));
    (
        holidays,
        makeup,
        table.map(|t| t.source.clone()).unwrap_or_default(),
    )
}

fn render(form: CalendarPage) -> Result<Response, AppError> {
    Ok(Html(form.render().map_err(AppError::internal)?).into_response())
}

async fn page_for(
    state: &HubState,
    user: &CurrentUser,
    year: String,
    source: String,
    holidays: Vec<HolidayRow>,
    makeup: Vec<MakeupRow>,
) -> Result<CalendarPage, AppError> {
    let cal = state.app.calendar();
    let st = state.app.clone();
    let version = blocking(move || Ok(st.store.calendar_version()?)).await?;
    let loaded = (2020..=2100)
        .filter_map(|y| cal.year_table(y))
        .map(|t| {
            let holidays = t
                .holidays
                .iter()
                .map(|h| format!("{} {} 至 {}", h.name, day(h.from), day(h.to)))
                .collect();
            let makeup = t.makeup_workdays.iter().map(|d| day(*d)).collect();
            (t.year, holidays, makeup)
        })
        .collect();
    Ok(CalendarPage {
        page: PageCtx::new(&state.app, user),
        loaded,
        version,
        year,
        source,
        holidays,
        makeup,
        message: None,
        ok: false,
        year_error: None,
    })
}

/// `/calendar?year=Y`: the loaded years, and the form of Y (next year when none is asked for: the
/// State Council publishes the next year's arrangement in autumn).
async fn calendar_page(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    Query(q): Query<YearQuery>,
) -> Result<Response, AppError> {
    access::require_endpoint(&user, "/calendar")?;
    let year = q
        .year
        .filter(|y| (2000..=2100).contains(y))
        .unwrap_or_else(|| tongban_runtime::clock::beijing_now().year() + 1);
    let table = state.app.calendar().year_table(year);
    let (holidays, makeup, source) = form_of(table.as_ref());
    let form = page_for(&state, &user, year.to_string(), source, holidays, makeup).await?;
    render(form)
}

/// A form that did not pass: the year's error and the rows, each with its own.
type Rejected = (Option<String>, Vec<HolidayRow>, Vec<MakeupRow>);

/// Checks the typed form; the table when every field is right, else the rows with their errors.
fn check(
    year: &str,
    source: &str,
    mut holidays: Vec<HolidayRow>,
    mut makeup: Vec<MakeupRow>,
) -> Result<YearTable, Rejected> {
    let year_n: Option<i32> = year
        .trim()
        .parse()
        .ok()
        .filter(|y| (2000..=2100).contains(y));
    let year_error = year_n
        .is_none()
        .then(|| "请填写年份，例如 2027。".to_string());
    let parse = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
    let in_year = |d: NaiveDate| year_n.is_none_or(|y| d.year() == y);
    let mut table = YearTable {
        year: year_n.unwrap_or(0),
        source: source.trim().to_string(),
        holidays: Vec::new(),
        makeup_workdays: Vec::new(),
    };
    let mut wrong = year_error.is_some();
    for row in holidays.iter_mut() {
        let blank =
            row.name.trim().is_empty() && row.from.trim().is_empty() && row.to.trim().is_empty();
        if blank {
            continue;
        }
        let (from, to) = (parse(&row.from), parse(&row.to));
        row.error = match (from, to) {
            _ if row.name.trim().is_empty() => Some("请填写节日名称。".into()),
            (None, _) => Some("放假开始日期不是有效日期。".into()),
            (_, None) => Some("放假结束日期不是有效日期。".into()),
            (Some(f), Some(t)) if f > t => Some("结束日期早于开始日期。".into()),
            (Some(f), Some(t)) if !in_year(f) || !in_year(t) => {
                Some(format!("日期不在{}年内。", table.year))
            }
            (Some(f), Some(t)) => {
                table.holidays.push(HolidayRange {
                    name: row.name.trim().to_string(),
                    from: f,
                    to: t,
                });
                None
            }
        };
        wrong |= row.error.is_some();
    }
    for row in makeup.iter_mut() {
        if row.date.trim().is_empty() {
            continue;
        }
        row.error = match parse(&row.date) {
            None => Some("不是有效日期。".into()),
            Some(d) if !in_year(d) => Some(format!("日期不在{}年内。", table.year)),
            Some(d) if table.holidays.iter().any(|h| h.from <= d && d <= h.to) => {
                Some("这一天已在放假范围内，不能同时是调休上班日。".into())
            }
            Some(d) => {
                table.makeup_workdays.push(d);
                None
            }
        };
        wrong |= row.error.is_some();
    }
    if wrong {
        return Err((year_error, holidays, makeup));
    }
    Ok(table)
}

async fn calendar_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    access::require_endpoint(&user, "/calendar")?;
    let pairs = csrf_checked_form(&user, body)?;
    let one = |k: &str| field(&pairs, k).to_string();
    let all = |k: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let (names, froms, tos) = (all("h_name"), all("h_from"), all("h_to"));
    let holidays: Vec<HolidayRow> = (0..names.len().max(froms.len()).max(tos.len()))
        .map(|i| HolidayRow {
            name: names.get(i).cloned().unwrap_or_default(),
            from: froms.get(i).cloned().unwrap_or_default(),
            to: tos.get(i).cloned().unwrap_or_default(),
            error: None,
        })
        .collect();
    let makeup: Vec<MakeupRow> = all("m_date")
        .into_iter()
        .map(|date| MakeupRow { date, error: None })
        .collect();
    let (year, source) = (one("year"), one("source"));
    let table = match check(&year, &source, holidays.clone(), makeup.clone()) {
        Ok(table) => table,
        Err((year_error, holidays, makeup)) => {
            let mut form = page_for(&state, &user, year, source, holidays, makeup).await?;
            form.year_error = year_error;
            form.message = Some("未保存：请改正标红的项目，已填写的内容都保留着。".into());
            return render(form);
        }
    };
    let json = serde_json::to_string(&table).map_err(AppError::internal)?;
    let st = state.app.clone();
    let saved = blocking(move || {
        let saved = st.store.add_calendar_year(&json);
        if saved.is_ok() {
            st.refresh_county_data_blocking()?;
        }
        Ok(saved)
    })
    .await?;
    match saved {
        Ok(version) => {
            audit::record(
                &state.app.store,
                &user.name,
                "calendar.published",
                &format!("{} version {version}", table.year),
                user.source,
            )
            .await?;
            let (holidays, makeup, source) = form_of(Some(&table));
            let mut form = page_for(
                &state,
                &user,
                table.year.to_string(),
                source,
                holidays,
                makeup,
            )
            .await?;
            form.message = Some(format!(
                "{}年的安排已保存（日历版本 {version}），各站点下次同步时自动更新。",
                table.year
            ));
            form.ok = true;
            render(form)
        }
        Err(e) if e.is_fault() => Err(AppError::from(e)),
        Err(e) => {
            let mut form = page_for(&state, &user, year, source, holidays, makeup).await?;
            form.message = Some(format!("未保存：{e}"));
            render(form)
        }
    }
}
