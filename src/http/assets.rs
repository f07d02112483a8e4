//! The browser client: `web/dist`, embedded in release builds (read from disk in debug builds),
//! served at `/` with the single-page app's `index.html` for every other non-API path.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Assets;

fn file(path: &str) -> Option<HttpResponse> {
    let asset = Assets::get(path)?;
    let mime = asset.metadata.mimetype().to_owned();
    // Vite names built files by content hash: they never change, so they cache forever.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, mime))
            .insert_header((header::CACHE_CONTROL, cache))
            .body(asset.data.into_owned()),
    )
}

/// Serves a built file, or `index.html` for app routes.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    if let Some(res) = file(if path.is_empty() { "index.html" } else { path }) {
        return res;
    }
    // Paths with an extension are files that do not exist; others are routes of the app.
    if path.rsplit('/').next().is_some_and(|last| last.contains('.')) {
        return HttpResponse::NotFound()
            .json(serde_json::json!({"error": "not_found", "message": "not found"}));
    }
    file("index.html").unwrap_or_else(|| {
        HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("The web client is not built: run `make build` (or `cd web && npm run build`).")
    })
}
