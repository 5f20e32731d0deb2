//! `GET /documents/{id}/{token}/{name}`: stored order documents (Ozon labels …). No bearer
//! token (1C users open the link); the random token in the link is the access check.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::connectors::ozon::labels::document_for_download;
use crate::exchange::Exchange;

pub async fn download(
    path: web::Path<(i32, String, String)>,
    ex: web::Data<Arc<Exchange>>,
) -> HttpResponse {
    let (id, token, name) = path.into_inner();
    let pool = ex.pool.clone();
    let data_dir = ex.cfg.data_dir.clone();
    let found = web::block(
        move || -> anyhow::Result<Option<(Vec<u8>, String, String)>> {
            let mut c = pool.get()?;
            let Some((file, ct)) = document_for_download(&mut c, &data_dir, id, &token, &name)?
            else {
                return Ok(None);
            };
            Ok(Some((std::fs::read(file)?, ct, name)))
        },
    )
    .await;
    match found {
        Ok(Ok(Some((bytes, ct, name)))) => HttpResponse::Ok()
            .content_type(ct)
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"{}\"", name.replace('"', "")),
            ))
            .body(bytes),
        Ok(Ok(None)) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such document"),
        Ok(Err(e)) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("cannot read the document: {e}")),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(e.to_string()),
    }
}
