//! The overdue-action reminder (SPEC §5): one email per owner, oldest item first; a
//! leader copied on long-overdue items gets their own copy (their own links). A CMO's
//! person working for several sponsors gets one email with a group per sponsor.

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
    /// The program's sponsor: lines are grouped by it.
    pub sponsor: String,
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
    struct Group<'a> {
        sponsor: &'a str,
        lines: Vec<Line<'a>>,
    }
    #[derive(Serialize)]
    struct Context<'a> {
        reader_name: &'a str,
        /// Set on a leadership copy: whose items these are.
        owner_name: Option<&'a str>,
        local_date: NaiveDate,
        /// One per sponsor, in the order of their names; oldest item first in each.
        groups: Vec<Group<'a>>,
        /// Whether the lines span several sponsors (each group then has its heading).
        several_sponsors: bool,
        count: String,
        copied: bool,
        escalate_after_days: i64,
    }
    let (owner_name, copied) = match to {
        Addressee::Owner { leadership_copied } => (None, leadership_copied),
        Addressee::LeadershipCopy { owner_name } => (Some(owner_name), true),
    };
    let mut sorted: Vec<&ReminderLine> = lines.iter().collect();
    sorted.sort_by(|a, b| (&a.sponsor, a.due_date, a.id).cmp(&(&b.sponsor, b.due_date, b.id)));
    let mut groups: Vec<Group> = Vec::new();
    for line in sorted {
        let rendered = Line {
            line,
            url: reader.page(PageRecord::ActionItem, line.id),
            overdue: format!("{} overdue", words::count(line.days_overdue, "day")),
        };
        match groups.last_mut() {
            Some(g) if g.sponsor == line.sponsor => g.lines.push(rendered),
            _ => groups.push(Group {
                sponsor: &line.sponsor,
                lines: vec![rendered],
            }),
        }
    }
    let context = Context {
        reader_name: &reader.name,
        owner_name,
        local_date,
        several_sponsors: groups.len() > 1,
        groups,
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
                sponsor: "Acme".into(),
                due_date: d(11, 20),
                days_overdue: 10,
            },
            ReminderLine {
                id: 5,
                title: "Book slot".into(),
                program: "Mab X".into(),
                sponsor: "Acme".into(),
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
        assert!(
            !r.text_body.contains("For Acme:"),
            "one sponsor: no headings"
        );
    }

    #[test]
    fn a_cmo_person_working_for_two_sponsors_reads_one_group_each() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2026, m, dd).unwrap();
        let line = |id, title: &str, program: &str, sponsor: &str, due| ReminderLine {
            id,
            title: title.into(),
            program: program.into(),
            sponsor: sponsor.into(),
            due_date: due,
            days_overdue: 1,
        };
        let lines = [
            line(1, "Beta BMR", "BX-2", "Beta Bio", d(11, 25)),
            line(2, "Acme COA", "AC-1", "Acme Pharma", d(11, 28)),
            line(3, "Beta APS", "BX-2", "Beta Bio", d(11, 20)),
        ];
        let reader = Reader::preview(&user(3, "Europe/Zurich"), "http://h/");
        let to = Addressee::Owner {
            leadership_copied: false,
        };
        let r = render(&reader, to, d(11, 30), &lines, 7).unwrap();
        let acme = r
            .text_body
            .find("For Acme Pharma:")
            .expect("Acme's heading");
        let beta = r.text_body.find("For Beta Bio:").expect("Beta's heading");
        assert!(acme < beta, "groups in the order of the sponsors' names");
        let beta_group = &r.text_body[beta..];
        assert!(beta_group.find("Beta APS").unwrap() < beta_group.find("Beta BMR").unwrap());
        assert!(!beta_group.contains("Acme COA"));
        assert!(r.html_body.contains("Acme Pharma"));
    }
}
