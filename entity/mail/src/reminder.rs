//! The overdue-action reminder (SPEC §5): one email per owner, oldest item first.

use chrono::NaiveDate;
use serde::Serialize;

use entity::outbox::Email;

use crate::RenderError;

#[derive(Debug, Clone, Serialize)]
pub struct ReminderLine {
    pub id: i64,
    pub title: String,
    pub program: String,
    pub due_date: NaiveDate,
    pub days_overdue: i64,
}

pub fn render(
    owner_name: &str,
    local_date: NaiveDate,
    lines: &[ReminderLine],
    leadership_copied: bool,
    escalate_after_days: i64,
    base_url: &str,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        owner_name: &'a str,
        local_date: NaiveDate,
        lines: &'a [ReminderLine],
        copied: bool,
        escalate_after_days: i64,
        base_url: &'a str,
    }
    let context = Context {
        owner_name,
        local_date,
        lines,
        copied: leadership_copied,
        escalate_after_days,
        base_url: base_url.trim_end_matches('/'),
    };
    crate::render("reminder", &context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_items_with_links_and_escapes_html() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2026, m, dd).unwrap();
        let lines = [
            ReminderLine {
                id: 4,
                title: "Send <COA>".into(),
                program: "Mab X".into(),
                due_date: d(11, 20),
                days_overdue: 10,
            },
            ReminderLine {
                id: 5,
                title: "Book slot".into(),
                program: "Mab X".into(),
                due_date: d(11, 29),
                days_overdue: 1,
            },
        ];
        let r = render("Ana", d(11, 30), &lines, true, 7, "http://h/").unwrap();
        assert_eq!(r.subject, "2 overdue action items \u{2014} 2026-11-30");
        assert!(r.text_body.contains(
            "- Send <COA> (Mab X), due 2026-11-20, 10 days overdue\n  http://h/api/v1/action-items/4"
        ));
        assert!(r.text_body.contains("due 2026-11-29, 1 day overdue"));
        assert!(r.text_body.contains("more than 7 days"));
        assert!(r.html_body.contains("Send &lt;COA&gt;"));
        assert!(
            r.html_body
                .contains("href=\"http:&#x2f;&#x2f;h/api/v1/action-items/4\"")
        );
    }
}
