//! Field checks beyond what the type system says (lengths, characters, formats, ranges),
//! collected so a client learns about every invalid field at once.

use crate::error::{ApiError, FieldError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
