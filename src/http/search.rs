//! `GET /api/v1/search`: full-text search over the cases the caller may see now, or inside one
//! case (`case_id`). See [`crate::store::search`]. The query text is never logged (the request
//! log records the path only) nor repeated in an error.

use actix_web::{HttpResponse, web};
use articula_protocol::CaseId;
use serde::Deserialize;

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::search::{MAX_WORDS, SearchPage, query_words};

/// Routes of this module.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/search").route(web::get().to(search)));
}

/// The longest query, in characters.
const MAX_QUERY_CHARS: usize = 200;
/// The largest page.
const MAX_LIMIT: i64 = 50;
/// The furthest page.
const MAX_OFFSET: i64 = 1000;

/// Query of a search.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find (1–8 words, at most 200 characters), each as the start of a word: all of
    /// them, in any order, without regard to case or accents.
    q: Option<String>,
    /// Only inside this case (a case the caller does not see finds nothing).
    #[param(value_type = Option<String>)]
    case_id: Option<CaseId>,
    /// Page size (1–50, default 20).
    limit: Option<i64>,
    /// Offset (0–1000).
    offset: Option<i64>,
}

/// Search the labels, chat messages, Rx values and notes, file names and people (doctor, clinic,
/// lab) of the cases the caller may see. Deleted messages are never found; an edited message
/// by its current text.
#[utoipa::path(get, path = "/api/v1/search", tag = "cases", params(SearchQuery),
    responses((status = 200, body = SearchPage), (status = 422, description = "`validation_failed`: no words, too long, bad limit or offset")),
    security(("bearer" = [])))]
pub async fn search(
    caller: Caller,
    app: web::Data<AppState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let text = q.q.unwrap_or_default();
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!("q is longer than {MAX_QUERY_CHARS} characters")));
    }
    let terms = query_words(&text);
    if terms.is_empty() {
        return Err(ApiError::invalid("q must contain a word (letters or digits)"));
    }
    if terms.len() > MAX_WORDS {
        return Err(ApiError::invalid(format!("q has more than {MAX_WORDS} words")));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1–{MAX_LIMIT}")));
    }
    let offset = q.offset.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(ApiError::invalid(format!("offset must be 0–{MAX_OFFSET}")));
    }
    let page = app.db.search(caller.user_id, &terms, q.case_id, limit, offset).await?;
    Ok(HttpResponse::Ok().json(page))
}
