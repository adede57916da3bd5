//! `GET /orders/{id}/checkout`: where a buyer waits when DHMAD's rate limit is reached. The
//! page refreshes itself (no script: `Refresh` and `<meta http-equiv="refresh">`) and forwards
//! to DHMAD's page as soon as the order's session is open. Like the order page, it is reached
//! only through the order's link.

use askama::Template;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use uuid::Uuid;

use super::{id_path::IdPath, render};
use crate::{
    error::{AppError, AppResult},
    orders::queue::{self, Progress},
    state::AppState,
};

/// A waiting page asks again at least this often, and at most this often.
const REFRESH_SECS: std::ops::RangeInclusive<u64> = 2..=10;

#[derive(Template)]
#[template(path = "checkout_wait.html")]
struct WaitingPage {
    order_id: Uuid,
    ahead: i64,
    wait: String,
    refresh_secs: u64,
}

pub async fn page(State(s): State<AppState>, IdPath(id): IdPath) -> AppResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    Ok(match queue::progress(&s, id).await? {
        Progress::OnDhmad(url) => Redirect::to(&url).into_response(),
        Progress::Elsewhere => Redirect::to(&format!("/orders/{id}")).into_response(),
        Progress::Waiting(place) => {
            // Soon after the expected turn, but often enough to notice an earlier one.
            let refresh = place
                .wait_secs
                .clamp(*REFRESH_SECS.start(), *REFRESH_SECS.end());
            let page = WaitingPage {
                order_id: id,
                ahead: place.ahead,
                wait: in_words(place.wait_secs),
                refresh_secs: refresh,
            };
            (
                [
                    (header::REFRESH, refresh.to_string()),
                    (header::RETRY_AFTER, place.wait_secs.to_string()),
                ],
                render(&page)?,
            )
                .into_response()
        }
    })
}

/// "about 40 seconds", "about 3 minutes".
fn in_words(secs: u64) -> String {
    match secs {
        0..=1 => "a second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=89 => "a minute".into(),
        _ => format!("{} minutes", (secs + 30) / 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(super::in_words(1), "a second");
        assert_eq!(super::in_words(42), "42 seconds");
        assert_eq!(super::in_words(75), "a minute");
        assert_eq!(super::in_words(150), "3 minutes");
    }
}
