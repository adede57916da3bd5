//! The hosted checkout page `GET|POST /checkout/{sessionId}` (`docs/dhmad-api.md` §4.2).

mod form;
mod view;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dhmad::{PaymentMethod, SessionStatus};

use crate::lifecycle::perform::{self, PerformInput};
use crate::lifecycle::sessions;
use crate::security::{self, PAGE_CSP};
use crate::state::AppState;
use form::PageForm;
use view::Notice;

/// Routes of the hosted page (uploads up to 10 MB).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout/{id}", get(show).post(submit))
        .layer(DefaultBodyLimit::max(10 * 1024 * 1024))
}

/// `headers`: the open page has a form, the closed page none.
fn html(
    status: StatusCode,
    t: &impl Template,
    csp: &str,
    headers: fn(Response, &str) -> Response,
) -> Response {
    match t.render() {
        Ok(body) => headers((status, Html(body)).into_response(), csp),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

/// An unknown session (or one whose escrow is gone): most often a tab left open across a
/// restart, so the page leads to the dashboard, like the other 404 pages.
fn not_found() -> Response {
    crate::pages::message(
        StatusCode::NOT_FOUND,
        "Checkout session not found",
        "This link is not valid, or it is from before the sandbox restarted (its state lives in \
         memory). Start again from the shop; the dashboard lists the sessions open now.",
    )
}

fn render(state: &AppState, id: &str, error: Option<Notice>) -> Response {
    let ctx = state.ctx();
    let mut store = state.lock_store();
    let Some(s) = store.sessions.get_mut(id) else {
        return not_found();
    };
    sessions::expire_if_due(s, ctx.now);
    if s.status != SessionStatus::Pending {
        let closed = view::closed(s, &ctx.app_name);
        return html(StatusCode::GONE, &closed, PAGE_CSP, security::page_headers);
    }
    let s = s.clone();
    let Some(rec) = store.escrows.get(&s.escrow_id) else {
        return not_found();
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let csp = security::checkout_csp(&s.redirect_url);
    let page = view::checkout(&store, &s, rec, &ctx, error);
    html(status, &page, &csp, security::form_page_headers)
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    render(&state, &id, None)
}

fn see_other(url: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_owned())]).into_response()
}

async fn submit(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    if let Some(refused) = security::checkout_post_guard(&state, &req) {
        return refused;
    }
    let form = match PageForm::read(req).await {
        Ok(f) => f,
        Err(e) => {
            let why = Notice::plain(format!("Could not read the form: {e}"));
            return render(&state, &id, Some(why));
        }
    };
    if form.get("op") == Some("cancel") {
        return match state.with_store(|st, ctx| sessions::cancel_session(st, ctx, &id)) {
            Ok(url) => see_other(&url),
            Err(_) => render(&state, &id, None),
        };
    }
    let guest = form.get("payer") == Some("guest");
    // The wallet is the page's default: a proof attached without choosing the guest payment
    // would pay from the wallet and drop the file, the opposite of what was tried.
    if form.get("payer") == Some("wallet") && form.file.is_some() {
        let why = Notice::plain(
            "You attached a payment proof but chose to pay with your DHMAD wallet: select \
             “Pay as a guest” to send the proof, or remove the file to pay with the wallet."
                .into(),
        );
        return render(&state, &id, Some(why));
    }
    let input = PerformInput {
        guest_method: guest
            .then(|| PaymentMethod::from(form.get("method").unwrap_or("bank_transfer"))),
        note: form.get("note").map(str::to_owned),
        // The template's two radio values only: anything else must not accept a proof.
        accept_proof: match form.get("decision") {
            Some("accept") => Some(true),
            Some("correction") => Some(false),
            _ => None,
        },
        upload: form.file,
    };
    match state.with_store(|st, ctx| perform::perform(st, ctx, &id, input)) {
        Ok(url) => see_other(&url),
        Err(e) => render(&state, &id, Some(Notice::from(&e))),
    }
}
