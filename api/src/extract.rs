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

mod query;
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
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de);
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

/// Collects field errors so a client learns about all of them at once.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

/// Text fields this long or shorter are one line.
pub const ONE_LINE_MAX: usize = 300;

impl Checks {
    pub fn fail(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Trimmed text between `min` and `max` characters, with no control characters.
    /// Checks a text field: its length, and its characters. Fields of at most
    /// [`ONE_LINE_MAX`] characters (names, titles, references) are one line; longer ones
    /// (descriptions, notes) may hold line breaks and tabs, never other controls.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.trim().chars().count();
        if len < min {
            if min == 1 {
                self.fail(field, "required", "must not be empty");
            } else {
                self.fail(
                    field,
                    "too_short",
                    format!("must be at least {min} characters"),
                );
            }
        } else if value.chars().count() > max {
            self.fail(
                field,
                "too_long",
                format!("must be at most {max} characters"),
            );
        } else if max <= ONE_LINE_MAX && value.chars().any(char::is_control) {
            // Names, titles, references: one line. A line break in one would show as a
            // line of its own (a fake header) in a plain-text email.
            self.fail(
                field,
                "invalid_characters",
                "must be one line: no line breaks, tabs or other control characters",
            );
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.fail(
                field,
                "invalid_characters",
                "must not contain control characters",
            );
        }
    }

    pub fn optional_text(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value {
            self.text(field, v, min, max);
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        if !entity::user::is_plausible_email(&entity::user::normalize_email(value)) {
            self.fail(field, "invalid_format", "not a plausible email address");
        }
    }

    pub fn time_zone(&mut self, field: &str, value: &str) {
        if value.parse::<chrono_tz::Tz>().is_err() {
            self.fail(
                field,
                "invalid_time_zone",
                "an IANA time zone name, e.g. Europe/Zurich or America/New_York",
            );
        }
    }

    /// A phone for the escalation call tree, as people write it.
    pub fn phone(&mut self, field: &str, phone: &str) {
        let p = phone.trim();
        let allowed = p
            .chars()
            .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch));
        let digits = p.chars().filter(char::is_ascii_digit).count();
        if !(5..=32).contains(&p.len()) || !allowed || digits < 5 {
            self.fail(
                field,
                "invalid_format",
                "5 to 32 characters of digits, spaces and + - ( ) ., with at least 5 digits",
            );
        }
    }

    pub fn password(&mut self, field: &str, value: &str) {
        let len = value.chars().count();
        if len < entity::user::MIN_PASSWORD_LEN {
            self.fail(
                field,
                "too_short",
                format!(
                    "must be at least {} characters",
                    entity::user::MIN_PASSWORD_LEN
                ),
            );
        } else if len > 256 {
            self.fail(field, "too_long", "must be at most 256 characters");
        }
    }

    /// A re-entered signing password: any characters, 1 to 256 of them.
    pub fn signing_password(&mut self, field: &str, value: &str) {
        if value.is_empty() || value.chars().count() > 256 {
            self.fail(field, "invalid_length", "must be 1 to 256 characters");
        }
    }

    pub fn optional_signing_password(&mut self, field: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.signing_password(field, v);
        }
    }

    /// Dates stay within 1900–9999: beyond that SQLite's text dates stop sorting.
    pub fn date(&mut self, field: &str, value: chrono::NaiveDate) {
        let lower = chrono::NaiveDate::from_ymd_opt(1900, 1, 1);
        let upper = chrono::NaiveDate::from_ymd_opt(9999, 12, 31);
        if lower.is_some_and(|l| value < l) || upper.is_some_and(|u| value > u) {
            self.fail(
                field,
                "out_of_range",
                "must be between 1900-01-01 and 9999-12-31",
            );
        }
    }

    /// A link a person follows (evidence in a document system): an absolute `http(s)` URL.
    pub fn optional_link(&mut self, field: &str, value: Option<&str>) {
        let Some(value) = value else { return };
        let ok = value.len() <= 2048
            && url::Url::parse(value)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            self.fail(
                field,
                "invalid_url",
                "an absolute http or https URL of at most 2048 characters, e.g. https://dms.example.com/doc/WO-5512",
            );
        }
    }

    pub fn optional_date(&mut self, field: &str, value: Option<chrono::NaiveDate>) {
        if let Some(v) = value {
            self.date(field, v);
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
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
    fn names_and_titles_are_one_line_and_descriptions_may_have_lines() {
        let mut c = Checks::default();
        c.text("title", "Filter\r\nBcc: x@evil.test", 1, 200);
        c.text("display_name", "Ana\nSmith", 1, 200);
        c.text("program_role", "QA\tlead", 1, 100);
        c.text("description", "line one\nline two\twith a tab", 1, 10_000);
        c.text("notes", "a bell\u{7}", 1, 2_000);
        let err = c.finish().expect_err("refused");
        let refused: Vec<String> = fields(err).into_iter().map(|(f, _)| f).collect();
        assert_eq!(refused, ["title", "display_name", "program_role", "notes"]);
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
    fn a_nested_wrong_type_is_named_by_its_path() {
        let err = parse_json::<Body>(br#"{"name": "a", "inner": {"count": -1}}"#).unwrap_err();
        assert_eq!(
            fields(err),
            vec![("inner.count".into(), "invalid_value".into())]
        );
    }

    #[test]
    fn text_checks_collect_every_problem() {
        let mut c = Checks::default();
        c.text("a", "  ", 1, 10);
        c.text("b", "eleven char", 1, 10);
        c.text("c", "bell\u{7}", 1, 10);
        c.time_zone("d", "Mars/Olympus");
        c.time_zone("e", "Europe/Berlin");
        let codes: Vec<String> = match c.finish().unwrap_err() {
            ApiError::Validation(f) => f.into_iter().map(|f| f.code).collect(),
            _ => unreachable!(),
        };
        assert_eq!(
            codes,
            [
                "required",
                "too_long",
                "invalid_characters",
                "invalid_time_zone"
            ]
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
