//! `GET /sandbox/contracts/{id}.pdf`: what a contract's `pdfVersions[].url` opens. DHMAD renders
//! the signed contract; the sandbox answers a one-page placeholder naming the contract and its
//! signatures, so the link a shop shows works when clicked.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::{AppState, ContractRecord};

pub async fn pdf(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let lines = {
        let store = state.lock_store();
        file.strip_suffix(".pdf").and_then(|id| {
            store
                .escrows
                .values()
                .find_map(|e| Some((&e.id, e.contract.as_ref().filter(|c| c.id == id)?)))
                .map(|(escrow, c)| lines(escrow, c))
        })
    };
    let Some(lines) = lines else {
        return crate::pages::message(
            StatusCode::NOT_FOUND,
            "Contract not found",
            "This sandbox has no contract with that id. State lives in memory: a restart clears it.",
        );
    };
    let mut resp = placeholder(&lines).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    // Shown inline by the browser's viewer (not `security::attachment`'s download: this file is
    // the sandbox's own, not an upload).
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn lines(escrow_id: &str, c: &ContractRecord) -> Vec<String> {
    let signed = |at: Option<time::OffsetDateTime>| match at {
        Some(at) => format!("signed {}", dhmad::iso::format(at)),
        None => "not signed".to_owned(),
    };
    vec![
        "DHMAD sandbox contract (placeholder)".to_owned(),
        format!("Contract {} of escrow {escrow_id}", c.id),
        format!("Seller: {}", signed(c.seller_signed_at)),
        format!("Buyer: {}", signed(c.buyer_signed_at)),
        "DHMAD renders the signed contract here; the sandbox does not.".to_owned(),
        format!("The terms: GET /api/v1/escrows/{escrow_id}/contract"),
    ]
}

/// A one-page PDF showing `lines` in Helvetica (printable ASCII; anything else becomes `?`).
fn placeholder(lines: &[String]) -> Vec<u8> {
    let mut text = String::from("BT /F1 12 Tf 56 780 Td 16 TL");
    for line in lines {
        let escaped: String = line
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .flat_map(|c| match c {
                '(' | ')' | '\\' => vec!['\\', c],
                _ => vec![c],
            })
            .collect();
        text.push_str(&format!(" ({escaped}) Tj T*"));
    }
    text.push_str(" ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{body}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for o in offsets {
        pdf.push_str(&format!("{o:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::placeholder;

    /// The cross-reference table points at each object, and `startxref` at the table: a viewer
    /// that trusts them (most do) finds the page.
    #[test]
    fn the_placeholder_is_a_well_formed_pdf() {
        let pdf = String::from_utf8(placeholder(&["Price (TND) \\ é".to_owned()])).unwrap();
        let tail = pdf.rsplit("startxref\n").next().unwrap();
        let xref: usize = tail.lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref..].starts_with("xref\n0 6\n"));
        let entries = pdf[xref..].lines().skip(3).take(5);
        for (i, entry) in entries.enumerate() {
            let at: usize = entry[..10].parse().unwrap();
            assert!(
                pdf[at..].starts_with(&format!("{} 0 obj", i + 1)),
                "{entry}"
            );
        }
        let stream = pdf.find("stream\n").unwrap() + "stream\n".len();
        let length: usize = pdf
            .split("/Length ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(&pdf[stream + length..][..10], "\nendstream");
        assert!(pdf.contains("(Price \\(TND\\) \\\\ ?) Tj"), "{pdf}");
    }
}
