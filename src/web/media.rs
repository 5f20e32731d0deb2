//! Card images, read-only: `GET /media/{path}` from the media folder (where catalog imports keep
//! the images 1C uploaded). Only plain relative paths; no listing.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::catalog::media::safe_relative;
use crate::exchange::Exchange;

pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        _ => "application/octet-stream",
    }
}

pub async fn get(path: web::Path<String>, ex: web::Data<Arc<Exchange>>) -> HttpResponse {
    let p = path.into_inner();
    let Some(rel) = safe_relative(&p) else {
        return HttpResponse::NotFound().finish();
    };
    let file = ex.cfg.media_dir().join(rel);
    match tokio::fs::read(&file).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(content_type(&p))
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(bytes),
        Err(_) => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_types() {
        assert_eq!(super::content_type("a/b.JPG"), "image/jpeg");
        assert_eq!(super::content_type("a/b.png"), "image/png");
        assert_eq!(super::content_type("a/b"), "application/octet-stream");
    }
}
