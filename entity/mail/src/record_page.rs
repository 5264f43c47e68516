//! The read-only page of a record (program, milestone, deviation, escalation, …) that
//! every email links to: what it is, its status in words, its facts, and sections of
//! related lines. The api gathers and words the content; this lays it out.

use serde::Serialize;

/// The stylesheet every page links (`/assets/page.css`): no inline style, so the
/// Content-Security-Policy can forbid it.
pub const PAGE_CSS: &str = include_str!("../templates/pages/page.css");

/// A link on a page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Link {
    pub href: String,
    pub text: String,
}

/// One labelled fact ("Detected", "Batch/lot", …).
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
    pub href: Option<String>,
}

impl Fact {
    pub fn new(label: &str, value: impl Into<String>) -> Self {
        Self {
            label: label.to_string(),
            value: value.into(),
            href: None,
        }
    }

    pub fn linked(label: &str, value: impl Into<String>, href: String) -> Self {
        Self {
            href: Some(href),
            ..Self::new(label, value)
        }
    }
}

/// One line of a section: a text, perhaps a link and a muted second line. `tone`
/// colours it (`critical`, `warning`, `ok`, `neutral`, or empty).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Row {
    pub text: String,
    pub href: Option<String>,
    pub meta: Option<String>,
    pub tone: &'static str,
}

/// One bar pair of a [`Timeline`]: baseline above, forecast (or actual) below.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub label: String,
    pub y: u32,
    pub baseline_x: u32,
    pub baseline_width: u32,
    pub baseline_text: String,
    pub forecast_x: u32,
    pub forecast_width: u32,
    pub forecast_text: String,
    pub tone: &'static str,
}

/// Milestones against baseline, drawn as inline SVG (no script, no inline style).
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub width: u32,
    pub height: u32,
    pub label: String,
    pub bars: Vec<Bar>,
    pub today_x: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub heading: String,
    pub intro: Option<String>,
    pub rows: Vec<Row>,
    /// Said when there are no rows.
    pub empty: String,
    pub timeline: Option<Timeline>,
}

impl Section {
    pub fn new(heading: &str, empty: &str, rows: Vec<Row>) -> Self {
        Self {
            heading: heading.to_string(),
            intro: None,
            rows,
            empty: empty.to_string(),
            timeline: None,
        }
    }
}

/// A record's page.
#[derive(Debug, Clone, Serialize)]
pub struct RecordPage {
    /// What kind of record, in words ("Deviation").
    pub kind: String,
    pub title: String,
    /// Its status in words ("Under investigation").
    pub status: String,
    pub status_reason: Option<String>,
    /// `critical`, `warning`, `ok` or `neutral`.
    pub tone: &'static str,
    /// The program it belongs to.
    pub program: Option<Link>,
    /// What must not be missed ("Production is on hold since …").
    pub alerts: Vec<String>,
    pub facts: Vec<Fact>,
    pub sections: Vec<Section>,
    /// Whose page this is and in which zone its times are.
    pub reader_note: String,
    /// When it was generated, in the reader's zone.
    pub generated: String,
}

pub fn record_page(page: &RecordPage) -> String {
    crate::render_template("pages/record.html", page).unwrap_or_else(|err| {
        tracing::error!(%err, "record page template failed");
        crate::page(&page.title, "This page cannot be shown right now.", None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_page_escapes_and_shows_its_sections() {
        let page = RecordPage {
            kind: "Deviation".into(),
            title: "Bioburden <script>".into(),
            status: "Under investigation".into(),
            status_reason: None,
            tone: "critical",
            program: Some(Link {
                href: "/programs/7".into(),
                text: "ACM-101".into(),
            }),
            alerts: vec!["Production is on hold".into()],
            facts: vec![Fact::new("Batch/lot", "ACM101-DS-0007")],
            sections: vec![Section::new("CAPA", "No CAPA yet.", vec![])],
            reader_note: "Times in America/Los_Angeles".into(),
            generated: "Tue 1 Dec 2026 08:00 PST".into(),
        };
        let html = record_page(&page);
        assert!(html.contains("Bioburden &lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("No CAPA yet."));
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("href=\"/assets/page.css\""));
        assert!(
            !html.contains("style="),
            "no inline style: the CSP forbids it"
        );
    }
}
