//! The order list as CSV, streamed in keyset batches, formula-safe.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use crate::http::admin_auth::Admin;
use crate::http::query::Query;
use crate::{
    db::{
        self,
        admin_views::{NeedsAction, OrderRow},
    },
    error::AppResult,
    state::AppState,
};

use super::list::ListParams;

/// Orders per query of the CSV export (keyset pages, streamed as they come).
const CSV_BATCH: i64 = 1000;

/// What starts a formula in a spreadsheet's cell.
const FORMULA: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Appends one CSV cell (RFC 4180): quoted when it holds a quote, comma or line break, quotes
/// doubled; a cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, or a tab or
/// carriage return first) is prefixed with `'` so that it stays text. So is a formula after a
/// `;`: a spreadsheet whose list separator is `;` (French locales) splits the line there,
/// whatever the quotes, and starts a cell with it (an address stored before quoted ones were
/// refused, `"a;=1+1"@b.tn`).
pub(in crate::http) fn csv_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(FORMULA);
    let quote = value.contains(['"', ',', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    let mut after_semicolon = false;
    for c in value.chars() {
        if after_semicolon && FORMULA.contains(&c) {
            out.push('\'');
        }
        after_semicolon = c == ';';
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_line(out: &mut String, cells: &[&str]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, c);
    }
    out.push_str("\r\n");
}

const CSV_HEADER: [&str; 13] = [
    "created_at",
    "order_id",
    "product",
    "sku",
    "buyer_email",
    "amount",
    "currency",
    "status",
    "mode",
    "escrow_id",
    "escrow_status",
    "needs_action",
    "pending_jobs",
];

fn csv_row(out: &mut String, r: &OrderRow) {
    let o = &r.order;
    let created = o
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let needs: Vec<&str> = r.needs().into_iter().map(NeedsAction::as_str).collect();
    csv_line(
        out,
        &[
            &created,
            &o.id.to_string(),
            &r.product_name,
            &o.sku,
            &o.buyer_email,
            &o.amount.to_string(),
            &o.currency,
            o.status.as_str(),
            o.mode.as_str(),
            o.escrow_id.as_deref().unwrap_or(""),
            o.escrow_status.as_deref().unwrap_or(""),
            &needs.join(" "),
            &r.open_jobs.join(" "),
        ],
    );
}

/// The export's body: chunks handed over by the task that reads the pages.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// `GET /admin/orders.csv`: the filtered list, every page, as CSV. Streamed: a task reads it
/// in keyset pages of `CSV_BATCH` and sends each as it comes, so neither side holds the whole
/// export; it stops when the client goes away. Audited: it carries every buyer's e-mail
/// address, so who took one, when and with which filter is on the trail.
pub async fn csv(
    admin: Admin,
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let filter = p.filter()?;
    // The first batch is read before the answer starts, so that a search the database refuses
    // (a NUL byte) is a 400 like the list's, not a 200 whose stream is cut.
    let mut rows = db::admin_views::list(&s.pool, &filter, None, CSV_BATCH).await?;
    // The filter as given, less the link's CSRF token.
    let query: String = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.starts_with(crate::http::csrf::FIELD))
        .collect::<Vec<_>>()
        .join("&")
        .chars()
        .take(500)
        .collect();
    let detail = if query.is_empty() {
        "every order".to_owned()
    } else {
        format!("filter: {query}")
    };
    admin.record(&s, "export_csv", None, &detail).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let pool = s.pool.clone();
    let export = async move {
        let mut out = String::new();
        csv_line(&mut out, &CSV_HEADER);
        loop {
            for r in &rows {
                csv_row(&mut out, r);
            }
            let last = rows.len() < CSV_BATCH as usize;
            if tx.send(Ok(std::mem::take(&mut out).into())).await.is_err() || last {
                return;
            }
            let after = rows.last().map(OrderRow::cursor);
            rows = match db::admin_views::list(&pool, &filter, after, CSV_BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "the CSV export failed");
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
        }
    };
    tokio::spawn(export.instrument(tracing::Span::current()));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"orders.csv\""),
            ),
        ],
        Body::new(ChannelBody(rx)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str) -> String {
        let mut out = String::new();
        csv_cell(&mut out, v);
        out
    }

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn formulas_stay_text() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+33"), "'+33");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(cell("a=b"), "a=b");
    }

    /// Split at a `;`, as a spreadsheet with that list separator does, no piece is a formula.
    #[test]
    fn a_formula_after_a_semicolon_stays_text() {
        let out = cell("\"a;=1+1;-2;@x;\"@b.tn");
        assert_eq!(out, "\"\"\"a;'=1+1;'-2;'@x;\"\"@b.tn\"");
        for piece in out.split(';') {
            assert!(!piece.starts_with(FORMULA), "{piece:?} in {out}");
        }
        assert_eq!(cell("a;b"), "a;b");
    }
}
