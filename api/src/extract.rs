//! Request extractors that turn bad input into problem+json instead of actix's defaults:
//! malformed JSON → 400, wrong shapes and unknown fields → 422 naming the field,
//! oversized bodies → 413, wrong media type → 415.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

mod checks;
mod query;
pub use checks::{Checks, ONE_LINE_MAX};
pub use query::query_error;

/// Largest accepted JSON body.
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// Input validation beyond what the type system says (lengths, formats, ranges).
pub trait Validate {
    fn validate(&self, checks: &mut Checks);
}

/// A JSON body, deserialized strictly and validated.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            match content_type.as_deref() {
                Some(ct) if is_json(ct) => {}
                Some(ct) => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "expected application/json, got {ct}"
                    )));
                }
                None => {
                    return Err(ApiError::UnsupportedMediaType(
                        "expected a Content-Type of application/json".to_string(),
                    ));
                }
            }
            if declared_len.is_some_and(|len| len > MAX_JSON_BODY) {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_JSON_BODY,
                });
            }
            let mut body = Vec::with_capacity(declared_len.unwrap_or(1024).min(MAX_JSON_BODY));
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
                if body.len() + chunk.len() > MAX_JSON_BODY {
                    return Err(ApiError::PayloadTooLarge {
                        limit: MAX_JSON_BODY,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            let value = parse_json::<T>(&body)?;
            let mut checks = Checks::default();
            value.validate(&mut checks);
            checks.finish()?;
            Ok(ApiJson(value))
        })
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Strict JSON parsing with the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut parsed = serde_path_to_error::deserialize::<_, T>(&mut de);
    // JSON has one number type: `3.0` is the integer 3 (JSON Schema says so too), but
    // serde refuses it for an integer field. Only when the strict parse fails, so the
    // usual body is read once.
    if let Err(err) = &parsed
        && err.inner().classify() == serde_json::error::Category::Data
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body)
        && integral_floats_to_integers(&mut value)
    {
        parsed = serde_path_to_error::deserialize::<_, T>(value);
    }
    if parsed.is_ok()
        && let Err(trailing) = de.end()
    {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {trailing}"),
        ));
    }
    match parsed {
        Ok(v) => {
            // Every date the body carries, in any field, within what the calendar feed,
            // emails and both databases represent.
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
                && let Some(field) = date_out_of_range(&value, String::new())
            {
                return Err(ApiError::Validation(vec![FieldError::new(
                    field,
                    "out_of_range",
                    format!(
                        "dates and times must lie between {EARLIEST_YEAR}-01-01 and {LATEST_YEAR}-12-31"
                    ),
                )]));
            }
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    Err(ApiError::bad_request(
                        "malformed_json",
                        format!("the request body is not valid JSON: {inner}"),
                    ))
                }
                serde_json::error::Category::Io => {
                    Err(ApiError::bad_request("unreadable_body", inner.to_string()))
                }
                serde_json::error::Category::Data => {
                    let message = with_expected_form(strip_position(&inner.to_string()));
                    let code = if message.starts_with("unknown field") {
                        "unknown_field"
                    } else if message.starts_with("missing field") {
                        "required"
                    } else {
                        "invalid_value"
                    };
                    let field = if path == "." || path.is_empty() {
                        missing_field_name(&message).unwrap_or_else(|| "body".to_string())
                    } else if code == "required" {
                        missing_field_name(&message)
                            .map(|f| format!("{path}.{f}"))
                            .unwrap_or(path)
                    } else {
                        path
                    };
                    Err(ApiError::Validation(vec![FieldError::new(
                        field, code, message,
                    )]))
                }
            }
        }
    }
}

/// Turns every number written with a fraction or exponent but integral (`3.0`, `1e3`)
/// and within i64 into an integer; says whether it changed any.
fn integral_floats_to_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^63: the first f64 past i64::MAX.
            if f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                *v = Value::from(f as i64);
                true
            } else {
                false
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, i| integral_floats_to_integers(i) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, i| integral_floats_to_integers(i) | changed),
        _ => false,
    }
}

/// chrono's parse errors say what went wrong ("premature end of input") but not what was
/// expected: say the form, with an example, so the caller can fix the value.
fn with_expected_form(message: String) -> String {
    const CHRONO: [&str; 6] = [
        "premature end of input",
        "input contains invalid characters",
        "input is out of range",
        "trailing input",
        "input is not enough for unique date and time",
        "no possible date and time matching input",
    ];
    if CHRONO.iter().any(|m| message.starts_with(m)) {
        return format!(
            "{message}: expected a date as YYYY-MM-DD (e.g. 2027-03-02), or a time as RFC 3339 \
             with its offset (e.g. 2027-03-02T14:05:00Z)"
        );
    }
    // serde names the Rust type it wanted ("expected i64"): say it in JSON's words.
    const JSON_FORMS: [(&str, &str); 13] = [
        ("i64", "an integer, e.g. 42"),
        ("i32", "an integer, e.g. 42"),
        ("i16", "an integer, e.g. 42"),
        ("u64", "a whole number 0 or more, e.g. 42"),
        ("u32", "a whole number 0 or more, e.g. 42"),
        ("u16", "a whole number 0 or more, e.g. 42"),
        ("u8", "a whole number 0 or more, e.g. 42"),
        ("usize", "a whole number 0 or more, e.g. 42"),
        ("f64", "a number, e.g. 2.5"),
        ("a boolean", "true or false"),
        ("a string", "a string in double quotes, e.g. \"text\""),
        ("a sequence", "a list in square brackets, e.g. [1, 2]"),
        ("a map", "an object in braces, e.g. {\"key\": \"value\"}"),
    ];
    if let Some((head, expected)) = message.rsplit_once(", expected ") {
        if let Some((_, form)) = JSON_FORMS.iter().find(|(rust, _)| *rust == expected) {
            return format!("{head}, expected {form}");
        }
        if expected.starts_with("struct ") {
            return format!("{head}, expected an object in braces, e.g. {{\"key\": \"value\"}}");
        }
    }
    message
}

/// The earliest and latest years a date may have (a due date in 9999 would write a
/// calendar line and an email no client reads).
pub const EARLIEST_YEAR: i32 = 1900;
pub const LATEST_YEAR: i32 = 2199;

/// The path of the first string that reads as a date or a time outside the years above.
fn date_out_of_range(v: &serde_json::Value, path: String) -> Option<String> {
    use chrono::Datelike;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        serde_json::Value::String(s) => {
            let year = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.year())
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.year()))
                .ok()?;
            (!(EARLIEST_YEAR..=LATEST_YEAR).contains(&year)).then(|| path.clone())
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| date_out_of_range(item, join(&i.to_string()))),
        serde_json::Value::Object(map) => map
            .iter()
            .find_map(|(k, item)| date_out_of_range(item, join(k))),
        _ => None,
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// A path segment that does not parse (e.g. a non-numeric id) names no resource; but a
/// literal route of that path (`/invitations/accept`, not invitation "accept") answers
/// 405 with its methods.
pub fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    if let Some(table) = req.app_data::<actix_web::web::Data<crate::fallback::RouteTable>>()
        && let Some(response) = crate::fallback::method_not_allowed(req, table)
    {
        return actix_web::error::InternalError::from_response(err, response).into();
    }
    ApiError::NotFound.into()
}

/// A form (the pages' POSTs) that cannot be read: problem+json like every API error.
pub fn form_error(err: actix_web::error::UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::UrlencodedError;
    match err {
        UrlencodedError::ContentType => ApiError::UnsupportedMediaType(
            "send the form as application/x-www-form-urlencoded".to_string(),
        ),
        UrlencodedError::Overflow { limit, .. } => ApiError::PayloadTooLarge { limit },
        other => ApiError::bad_request("malformed_form", other.to_string()),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn fields(err: ApiError) -> Vec<(String, String)> {
        match err {
            ApiError::Validation(f) => f.into_iter().map(|f| (f.field, f.code)).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn dates_far_out_are_refused_by_field() {
        #[derive(Debug, Deserialize)]
        struct Due {
            #[allow(dead_code)]
            due_date: chrono::NaiveDate,
            #[allow(dead_code)]
            items: Vec<serde_json::Value>,
        }
        let far = parse_json::<Due>(br#"{"due_date": "9999-12-31", "items": []}"#);
        assert_eq!(
            fields(far.expect_err("refused")),
            [("due_date".to_string(), "out_of_range".to_string())]
        );
        let nested = parse_json::<Due>(
            br#"{"due_date": "2027-01-04", "items": [{"at": "0001-01-01T00:00:00Z"}]}"#,
        );
        assert_eq!(fields(nested.expect_err("refused"))[0].0, "items.0.at");
        assert!(
            parse_json::<Due>(br#"{"due_date": "2199-12-31", "items": ["1999-12-31 notes"]}"#)
                .is_ok()
        );
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let err = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert!(matches!(
            err,
            ApiError::BadRequest {
                code: "malformed_json",
                ..
            }
        ));
    }

    #[test]
    fn trailing_garbage_is_a_bad_request() {
        let err = parse_json::<Body>(br#"{"name": "a"} x"#).unwrap_err();
        assert!(matches!(
            err,
            ApiError::BadRequest {
                code: "malformed_json",
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = parse_json::<Body>(br#"{"name": "a", "colour": 1}"#).unwrap_err();
        assert_eq!(fields(err), vec![("colour".into(), "unknown_field".into())]);
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(fields(err), vec![("name".into(), "required".into())]);
    }

    #[test]
    fn a_wrong_type_is_told_in_json_words() {
        let message = |body: &[u8]| match parse_json::<Body>(body).unwrap_err() {
            ApiError::Validation(f) => f[0].message.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(
            message(br#"{"name": "a", "inner": {"count": "7"}}"#),
            "invalid type: string \"7\", expected a whole number 0 or more, e.g. 42"
        );
        assert_eq!(
            message(br#"{"name": 7}"#),
            "invalid type: integer `7`, expected a string in double quotes, e.g. \"text\""
        );
        assert!(
            message(br#"{"name": "a", "inner": 3}"#)
                .ends_with("expected an object in braces, e.g. {\"key\": \"value\"}")
        );
    }

    #[test]
    fn an_integral_number_with_a_fraction_is_an_integer() {
        let body = parse_json::<Body>(br#"{"name": "a", "inner": {"count": 157679144.0}}"#)
            .expect("3.0 is the integer 3");
        assert_eq!(body.inner.map(|i| i.count), Some(157_679_144));
        assert_eq!(
            parse_json::<Body>(br#"{"name": "a", "inner": {"count": 2e1}}"#)
                .expect("an exponent too")
                .inner
                .map(|i| i.count),
            Some(20)
        );
        for refused in [
            &br#"{"name": "a", "inner": {"count": 2.5}}"#[..],
            br#"{"name": "a", "inner": {"count": -1.0}}"#,
            br#"{"name": "a", "inner": {"count": 1e30}}"#,
        ] {
            assert_eq!(
                fields(parse_json::<Body>(refused).unwrap_err()),
                vec![("inner.count".into(), "invalid_value".into())]
            );
        }
        // Not a way around a text field's type.
        assert_eq!(
            fields(parse_json::<Body>(br#"{"name": 1.0}"#).unwrap_err()),
            vec![("name".into(), "invalid_value".into())]
        );
    }

    #[test]
    fn a_nested_wrong_type_is_named_by_its_path() {
        let err = parse_json::<Body>(br#"{"name": "a", "inner": {"count": -1}}"#).unwrap_err();
        assert_eq!(
            fields(err),
            vec![("inner.count".into(), "invalid_value".into())]
        );
    }

    #[test]
    fn json_media_types_are_recognized() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
    }
}
