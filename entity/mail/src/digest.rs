//! The weekly status digest email; what it says is gathered by `entity::digest`.

use entity::digest::DigestData;
use entity::outbox::Email;
use serde::Serialize;

use crate::RenderError;

/// One recipient's digest email.
pub fn render(
    data: &DigestData,
    recipient_name: &str,
    unsubscribe_url: Option<&str>,
    base_url: &str,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        #[serde(flatten)]
        data: &'a DigestData,
        recipient_name: &'a str,
        unsubscribe_url: Option<&'a str>,
        base_url: &'a str,
    }
    let context = Context {
        data,
        recipient_name,
        unsubscribe_url,
        base_url: base_url.trim_end_matches('/'),
    };
    crate::render("digest", &context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use entity::digest::{ChangeLine, DeviationLine, ProgramInfo};
    use entity::overview::PlanSummary;
    use entity::quality_summary::QualitySummary;

    fn sample() -> DigestData {
        let mut quality = QualitySummary::default();
        quality.open_by_criticality.insert("critical".into(), 1);
        quality.open_by_criticality.insert("major".into(), 0);
        quality.open_by_criticality.insert("minor".into(), 2);
        let mut plan = PlanSummary::default();
        for h in ["on_track", "at_risk", "late"] {
            plan.by_health.insert(h.into(), 1);
        }
        let since = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        DigestData {
            program: ProgramInfo {
                id: 7,
                name: "Mab <b>X</b> & Co".into(),
                product_name: "mAb-1".into(),
                production_status: "on_hold".into(),
                time_zone: "Europe/Berlin".into(),
            },
            iso_week: "2026-W49".into(),
            generated_local: "Mon 30 Nov 2026 07:00".into(),
            since,
            since_local: "Mon 23 Nov 2026 07:00".into(),
            plan,
            quality,
            open_deviations: vec![DeviationLine {
                id: 3,
                title: "Filter <integrity> failure".into(),
                criticality: "critical".into(),
                status: "reported".into(),
                detected_local: "Fri 27 Nov 2026 14:10".into(),
            }],
            overdue_actions: vec![],
            overdue_actions_total: 0,
            changes: vec![ChangeLine {
                when_local: "Fri 27 Nov 2026 14:10".into(),
                who: "Ana".into(),
                what: "deviation #3: create".into(),
                reason: None,
            }],
            changes_total: 1,
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_plain() {
        let d = sample();
        let r = render(
            &d,
            "Ana",
            Some("http://h/api/v1/unsubscribe?token=a.b"),
            "http://h/",
        )
        .unwrap();
        assert_eq!(
            r.subject,
            "Mab <b>X</b> & Co weekly status 2026-W49: production on hold, 0 late milestones, 1 critical/0 major deviation open"
        );
        assert!(
            r.html_body
                .contains("Mab &lt;b&gt;X&lt;&#x2f;b&gt; &amp; Co")
        );
        assert!(!r.html_body.contains("<b>X</b>"));
        assert!(
            r.text_body
                .contains("Weekly status: Mab <b>X</b> & Co (mAb-1), week 2026-W49")
        );
        assert!(r.text_body.contains("PRODUCTION: ON_HOLD"));
        assert!(
            r.text_body
                .contains("[CRITICAL] Filter <integrity> failure (reported")
        );
        assert!(r.text_body.contains("http://h/api/v1/deviations/3"));
        assert!(
            r.text_body
                .contains("Unsubscribe: http://h/api/v1/unsubscribe?token=a.b")
        );
        assert!(
            r.text_body
                .contains("Fri 27 Nov 2026 14:10  Ana: deviation #3: create")
        );
        assert_eq!(
            r.subject,
            "Mab <b>X</b> & Co weekly status 2026-W49: production on hold, 0 late milestones, 1 critical/0 major deviation open"
        );
        let without = render(&d, "Ana", None, "http://h").unwrap();
        assert!(!without.text_body.contains("Unsubscribe"));
    }
}
