//! Case labels are de-identified: the web client warns before saving a label that looks like a
//! person's name. Its heuristic is in `web/src/labelCheck.ts`; this serves the operator's list of
//! names (`label_name_list`) that it also matches, and records when a warning was shown and the
//! label kept anyway (no label text in the record).

use actix_web::{HttpResponse, web};
use articula_protocol::{CaseId, OrgId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::resource;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/label-names").route(web::get().to(names)));
}

/// What the user did after the client's "this looks like a patient's name" warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelWarning {
    /// The warning was shown and the user saved the label anyway.
    ShownAndKept,
}

/// The names the client matches labels against.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LabelNames {
    /// Names in lower case, one word or several (from `ARTICULA_LABEL_NAME_LIST`; empty without it).
    pub names: Vec<String>,
}

/// Names that make a case label look like a patient's name (the client warns before saving one).
#[utoipa::path(get, path = "/api/v1/label-names", tag = "cases",
    responses((status = 200, body = LabelNames)), security(("bearer" = [])))]
pub async fn names(_caller: Caller, app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(LabelNames { names: app.label_names.to_vec() })
}

/// Records that the warning was shown and the label kept (`case.label_warning`, in the clinic's
/// chain): who, which case, on creation or on a change. Never the label.
pub async fn record_kept(
    app: &AppState,
    who: UserId,
    ip: String,
    clinic: OrgId,
    case: CaseId,
    when: &'static str,
) -> Result<(), ApiError> {
    let r = crate::audit::Record::new("case.label_warning", Some(who), Some(ip))
        .orgs([clinic])
        .case(case)
        .target(format!("case:{case}"))
        .details(json!({"choice": "shown_and_kept", "on": when}));
    crate::audit::record(&app.db, r).await?;
    Ok(())
}
