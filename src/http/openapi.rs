//! `GET /openapi.json`: the OpenAPI 3.1 document of the JSON API, generated from the handlers'
//! `#[utoipa::path]` annotations and the `ToSchema` derives of the types they read and write,
//! so the contract cannot drift from the code. `scripts/schemathesis` (run by CI) checks the
//! live service against it.

use std::borrow::Cow;

use axum::Json;
use serde_json::Value;
use utoipa::{
    openapi::{schema::Type, ObjectBuilder, RefOr, Schema},
    OpenApi, PartialSchema, ToSchema,
};

use crate::error::{AppError, AppResult};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Souk Digital storefront API",
        description = "The storefront's JSON API: the catalog, checkout through DHMAD escrow, and \
            the order as the shop knows it. Errors are JSON objects `{\"error\", \"message\"}`, \
            `message` being safe to show to the buyer."
    ),
    paths(super::shop::products, super::checkout::json, super::orders::json),
    tags(
        (name = "catalog", description = "What is on sale"),
        (name = "checkout", description = "Buying: an order, its escrow and DHMAD's payment page"),
        (name = "orders", description = "An order, by the id its checkout returned"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`, built from the code on each call (it is rarely asked for).
pub async fn document() -> AppResult<Json<Value>> {
    served_document()
        .map(Json)
        .map_err(|e| AppError::Internal(e.into()))
}

/// The document as served. utoipa (5.5) writes the fields of a response's Link objects in
/// snake case (`operation_id`) where OpenAPI spells them in camel case (`operationId`), and
/// tools skip a link that seems to name no operation; they are renamed here.
pub fn served_document() -> serde_json::Result<Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    let links = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|path| path.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
    Ok(doc)
}

/// The schema of money amounts: `rust_decimal` writes a decimal as a JSON string, so that no
/// digit is lost (`"15.000"`). Used as `#[schema(value_type = ...)]` on `Decimal` fields.
pub struct DecimalString;

impl PartialSchema for DecimalString {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
            .description(Some(
                "A decimal number written as a string, so that no digit is lost",
            ))
            .examples(["15.000"])
            .into()
    }
}

impl ToSchema for DecimalString {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Decimal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_money_is_a_decimal_string() {
        let doc = served_document().unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let decimal = &doc["components"]["schemas"]["Decimal"];
        assert_eq!(decimal["type"], "string", "{decimal}");
        assert_eq!(
            doc["components"]["schemas"]["ProductJson"]["properties"]["price"]["$ref"],
            "#/components/schemas/Decimal"
        );
        let created = &doc["paths"]["/api/checkout"]["post"]["responses"]["201"];
        let link = &created["links"]["GetOrder"];
        assert_eq!(link["operationId"], "get_order", "{link}");
        assert!(link.get("operation_id").is_none(), "{link}");
    }
}
