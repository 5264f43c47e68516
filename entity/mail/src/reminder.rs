//! The overdue-action reminder (SPEC §5): one email per owner, oldest item first; a
//! leader copied on long-overdue items gets their own copy (their own links).

use chrono::NaiveDate;
use entity::link_token::PageRecord;
use serde::Serialize;

use entity::outbox::Email;

use crate::{Reader, RenderError, words};

#[derive(Debug, Clone, Serialize)]
pub struct ReminderLine {
    pub id: i64,
    pub title: String,
    pub program: String,
    pub due_date: NaiveDate,
    pub days_overdue: i64,
}

/// Who the reminder is for: the owner of the items, or a leader copied on someone
/// else's long-overdue items.
#[derive(Debug, Clone, Copy)]
pub enum Addressee<'a> {
    Owner {
        /// Whether leadership is copied (items overdue past the threshold).
        leadership_copied: bool,
    },
    LeadershipCopy {
        owner_name: &'a str,
    },
}

pub fn render(
    reader: &Reader,
    to: Addressee<'_>,
    local_date: NaiveDate,
    lines: &[ReminderLine],
    escalate_after_days: i64,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        line: &'a ReminderLine,
        url: String,
        overdue: String,
    }
    #[derive(Serialize)]
    struct Context<'a> {
        reader_name: &'a str,
        /// Set on a leadership copy: whose items these are.
        owner_name: Option<&'a str>,
        local_date: NaiveDate,
        lines: Vec<Line<'a>>,
        count: String,
        copied: bool,
        escalate_after_days: i64,
    }
    let (owner_name, copied) = match to {
        Addressee::Owner { leadership_copied } => (None, leadership_copied),
        Addressee::LeadershipCopy { owner_name } => (Some(owner_name), true),
    };
    let context = Context {
        reader_name: &reader.name,
        owner_name,
        local_date,
        lines: lines
            .iter()
            .map(|line| Line {
                line,
                url: reader.page(PageRecord::ActionItem, line.id),
                overdue: format!("{} overdue", words::count(line.days_overdue, "day")),
            })
            .collect(),
        count: words::count(lines.len() as i64, "overdue action item"),
        copied,
        escalate_after_days,
    };
    crate::render("reminder", &context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::user;

    #[test]
    fn lists_items_with_personal_links_and_escapes_html() {
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
        let reader = Reader::preview(&user(3, "Europe/Zurich"), "http://h/");
        let to = Addressee::Owner {
            leadership_copied: true,
        };
        let r = render(&reader, to, d(11, 30), &lines, 7).unwrap();
        assert_eq!(r.subject, "2 overdue action items \u{2014} 2026-11-30");
        assert!(r.text_body.contains(
            "- Send <COA> (Mab X), due 2026-11-20, 10 days overdue\n  http://h/action-items/4"
        ));
        assert!(r.text_body.contains("due 2026-11-29, 1 day overdue"));
        assert!(r.text_body.contains("more than 7 days"));
        assert!(r.html_body.contains("Send &lt;COA&gt;"));
        assert!(
            r.html_body
                .contains("href=\"http:&#x2f;&#x2f;h&#x2f;action-items&#x2f;4\"")
        );
        let copy = render(
            &reader,
            Addressee::LeadershipCopy { owner_name: "Ana" },
            d(11, 30),
            &lines[..1],
            7,
        )
        .unwrap();
        assert_eq!(
            copy.subject,
            "Copy: 1 overdue action item of Ana \u{2014} 2026-11-30"
        );
        assert!(copy.text_body.contains("Ana's action items"));
    }
}
