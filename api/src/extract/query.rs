//! Query-string problems: 422 naming the parameter (actix would answer a bare 400) and
//! the form it expects.

use actix_web::HttpRequest;

use crate::error::{ApiError, FieldError};

/// Query-string problems: 422 naming the parameter (actix would answer a bare 400) and
/// the form it expects.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    req: &HttpRequest,
) -> actix_web::Error {
    let raw = err.to_string();
    let message = raw
        .strip_prefix("Query deserialize error: ")
        .unwrap_or(&raw)
        .to_string();
    let (field, message) = offending_parameter(&message, req.query_string());
    ApiError::Validation(vec![FieldError::new(field, "invalid_query", message)]).into()
}

/// Which parameter a query-string error is about, with what it expects. serde names a
/// missing or unknown field and quotes a bad enum value (found among the parameters); a
/// number that does not parse is the paging or id parameter whose value is not one.
fn offending_parameter(message: &str, query: &str) -> (String, String) {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if message.contains("field `")
        && let Some(name) = quoted.first()
    {
        return (name.to_string(), message.to_string());
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if let Some((key, _)) = pairs.iter().find(|(_, v)| quoted.contains(&v.as_str())) {
        return (key.clone(), message.to_string());
    }
    let numeric = |k: &str| {
        matches!(k, "limit" | "offset" | "after" | "days") || k == "id" || k.ends_with("_id")
    };
    if let Some((key, value)) = pairs
        .iter()
        .find(|(k, v)| numeric(k) && v.parse::<i64>().is_err())
    {
        return (
            key.clone(),
            format!("{value:?} is not a whole number: expected one such as {key}=50"),
        );
    }
    if message.contains("`true` or `false`")
        && let Some((key, value)) = pairs
            .iter()
            .find(|(_, v)| !matches!(v.as_str(), "true" | "false") && v.len() < 6 && !v.is_empty())
    {
        return (
            key.clone(),
            format!("{value:?} is not true or false: expected {key}=true or {key}=false"),
        );
    }
    ("query".to_string(), message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_query_value_names_its_parameter_and_the_form_it_expects() {
        let (field, message) = offending_parameter(
            "unknown variant `mars`, expected one of `eu`, `north_america`",
            "modality=biologic&region=mars",
        );
        assert_eq!(field, "region");
        assert!(message.contains("expected one of `eu`"));
        let (field, message) =
            offending_parameter("invalid digit found in string", "status=open&limit=abc");
        assert_eq!(field, "limit");
        assert!(message.contains("limit=50"), "{message}");
        let (field, _) =
            offending_parameter("unknown field `colour`, expected `region`", "colour=red");
        assert_eq!(field, "colour");
    }
}
