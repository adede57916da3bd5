//! `GET /checkout/callback?session_id&status`: where DHMAD sends the buyer back. UI only: the
//! `status` parameter is never trusted; the order changes only by what DHMAD itself says.

use std::collections::HashMap;

use axum::{extract::State, response::Redirect};

use crate::http::query::Query;
use crate::{
    error::{AppError, AppResult},
    orders::sync,
    state::AppState,
};

pub async fn callback(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> AppResult<Redirect> {
    let param = |name: &str| {
        q.get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AppError::BadRequest(format!("missing query parameter {name}")))
    };
    let session_id = param("session_id")?;
    param("status")?;
    if !could_be_a_session_id(session_id) {
        return Err(AppError::NotFound);
    }
    let back = sync::on_callback(&s, session_id).await?;
    // Each user back where the step was offered: the buyer to the order page, the merchant to
    // the back office's page of the order, through a back-office address (`admin_order::
    // from_dhmad`): the order's id, which is also the buyer's link, goes to a signed-in
    // merchant only, not to whoever else holds the merchant's session id. (The back office's
    // cookie is not sent here: its path is `/admin`.)
    let page = if back.for_merchant {
        let session: String = url::form_urlencoded::byte_serialize(session_id.as_bytes()).collect();
        format!("/admin/from-dhmad/{session}")
    } else {
        format!("/orders/{}", back.order_id)
    };
    Ok(Redirect::to(&page))
}

/// DHMAD's session ids are short visible ASCII; anything else cannot be one of ours (and a NUL
/// byte would make Postgres fail): unknown, as the team's design says (docs/ARCHITECTURE.md), without asking anyone. Nor `.`
/// or `..`, which a browser would resolve away in the back office's return path.
pub(super) fn could_be_a_session_id(id: &str) -> bool {
    id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic()) && !matches!(id, "." | "..")
}
