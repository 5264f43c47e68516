//! A record copy as a PDF (A4) with krilla: DejaVu Sans embedded (subset to the glyphs
//! used), so every character a record holds (names with accents, µg, ≥, CJK where the
//! font has it) reads the same in any PDF reader. No browser at run time.
//!
//! Laid out in two passes: lines are placed on pages first (wrapping measured with the
//! font's advances), then drawn, so every footer knows the page count.

use std::sync::{Arc, OnceLock};

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};

use super::RecordCopy;

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
const BODY: f32 = 9.0;
const FOOTER_SPACE: f32 = 30.0;
/// Where a field's value starts, right of its label.
const VALUE_COLUMN: f32 = 170.0;

/// Glyph advances for measuring lines (the font krilla embeds, read with ttf-parser).
struct Metrics {
    face: Option<ttf_parser::Face<'static>>,
}

/// The advance assumed for a character the font lacks, in ems (wider than most).
const FALLBACK_ADVANCE: f32 = 0.65;

impl Metrics {
    fn get() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| Metrics {
            face: ttf_parser::Face::parse(FONT, 0).ok(),
        })
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        let Some(face) = &self.face else {
            return text.chars().count() as f32 * FALLBACK_ADVANCE * size;
        };
        let units_per_em = f32::from(face.units_per_em());
        let ems: f32 = text
            .chars()
            .map(|c| {
                face.glyph_index(c)
                    .and_then(|g| face.glyph_hor_advance(g))
                    .map_or(FALLBACK_ADVANCE, |a| f32::from(a) / units_per_em)
            })
            .sum();
        ems * size
    }
}

/// Breaks `text` into lines no wider than `width` at `size`: at spaces, and inside a
/// word longer than a line; the text's own line breaks are kept.
pub fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let metrics = Metrics::get();
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if metrics.width(&candidate, size) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the line is cut where it reaches the edge.
            for c in word.chars() {
                line.push(c);
                if metrics.width(&line, size) > width {
                    line.pop();
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                }
            }
        }
        lines.push(line);
    }
    lines
}

/// One placed piece of text or a rule.
enum Mark {
    Text {
        x: f32,
        y: f32,
        size: f32,
        grey: bool,
        text: String,
    },
    Rule {
        y: f32,
    },
}

/// Places lines top to bottom, opening a new page when one is full.
struct Layout {
    full: Vec<Vec<Mark>>,
    page: Vec<Mark>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Self {
            full: Vec::new(),
            page: Vec::new(),
            y: MARGIN,
        }
    }

    fn ensure(&mut self, height: f32) {
        if self.y + height > PAGE_HEIGHT - MARGIN - FOOTER_SPACE {
            self.full.push(std::mem::take(&mut self.page));
            self.y = MARGIN;
        }
    }

    fn put(&mut self, mark: Mark) {
        self.page.push(mark);
    }

    fn pages(mut self) -> Vec<Vec<Mark>> {
        self.full.push(self.page);
        self.full
    }

    /// A paragraph at `x`, wrapped to the right margin.
    fn text(&mut self, x: f32, size: f32, grey: bool, text: &str) {
        for line in wrap(text, size, PAGE_WIDTH - MARGIN - x) {
            let height = size * 1.35;
            self.ensure(height);
            self.y += height;
            self.put(Mark::Text {
                x,
                y: self.y,
                size,
                grey,
                text: line,
            });
        }
    }

    /// A label and its value beside it, the value wrapped in its column.
    fn field(&mut self, label: &str, value: &str) {
        let labels = wrap(label, BODY, VALUE_COLUMN - 8.0);
        let values = wrap(value, BODY, PAGE_WIDTH - MARGIN - MARGIN - VALUE_COLUMN);
        let height = BODY * 1.35;
        for i in 0..labels.len().max(values.len()) {
            self.ensure(height);
            self.y += height;
            let y = self.y;
            if let Some(l) = labels.get(i) {
                self.put(Mark::Text {
                    x: MARGIN,
                    y,
                    size: BODY,
                    grey: true,
                    text: l.clone(),
                });
            }
            if let Some(v) = values.get(i) {
                self.put(Mark::Text {
                    x: MARGIN + VALUE_COLUMN,
                    y,
                    size: BODY,
                    grey: false,
                    text: v.clone(),
                });
            }
        }
    }

    fn heading(&mut self, text: &str) {
        self.ensure(BODY * 6.0);
        self.y += 14.0;
        self.text(MARGIN, 12.0, false, text);
        self.y += 4.0;
        let y = self.y;
        self.put(Mark::Rule { y });
        self.y += 2.0;
    }

    fn gap(&mut self, height: f32) {
        self.y += height;
    }
}

fn lay_out(copy: &RecordCopy) -> Vec<Vec<Mark>> {
    let mut l = Layout::new();
    l.text(MARGIN, 16.0, false, &copy.heading);
    l.text(MARGIN, 12.0, false, &copy.title);
    l.text(MARGIN, BODY, true, &format!("Program: {}", copy.program));
    l.text(
        MARGIN,
        BODY,
        true,
        &format!(
            "Copy of the record as held by cmo-orchestrator, generated {} ({}) for {}. \
             Every time is shown in {} and in UTC.",
            copy.generated_at.local,
            copy.generated_at.utc_text(),
            copy.generated_for,
            copy.zone
        ),
    );

    l.heading("Record");
    for (label, value) in &copy.fields {
        l.field(label, value);
    }

    l.heading(&format!(
        "Electronic signatures ({})",
        copy.signatures.len()
    ));
    if copy.signatures.is_empty() {
        l.text(MARGIN, BODY, true, "No signature on this record.");
    }
    for s in &copy.signatures {
        l.field("Printed name of the signer", &s.printed_name);
        l.field("Meaning of the signature", &s.meaning);
        l.field(
            "Date and time of signing",
            &format!("{} ({})", s.signed_at.local, s.signed_at.utc_text()),
        );
        if let Some(reason) = &s.reason {
            l.field("Reason", reason);
        }
        l.field("Record state", &s.record_state);
        l.field("Signature id", &s.id.to_string());
        l.gap(6.0);
    }

    l.heading(&format!("Audit trail ({} entries)", copy.trail.len()));
    for e in &copy.trail {
        l.ensure(BODY * 4.0);
        l.text(
            MARGIN,
            BODY,
            false,
            &format!(
                "{} ({}) · {} · {} · {} {}",
                e.at.local,
                e.at.utc_text(),
                e.actor,
                e.side,
                e.action,
                e.entity
            ),
        );
        if let Some(reason) = &e.reason {
            l.text(MARGIN + 12.0, BODY, false, &format!("Reason: {reason}"));
        }
        for change in &e.changes {
            l.text(MARGIN + 12.0, BODY, false, change);
        }
        l.text(
            MARGIN + 12.0,
            7.0,
            true,
            &format!("{} chain, entry {}, hash {}", e.side, e.seq, e.hash),
        );
        l.gap(4.0);
    }

    l.heading("Audit chain verification");
    for (side, result) in &copy.chains {
        l.field(&format!("The {side}'s chain"), result);
    }
    l.pages()
}

/// The copy as PDF bytes.
pub fn render(copy: &RecordCopy) -> Result<Vec<u8>, String> {
    let font = Font::new(Arc::new(FONT.to_vec()).into(), 0).ok_or("the bundled font")?;
    let pages = lay_out(copy);
    let count = pages.len();
    let mut document = Document::new();
    let at = copy.generated_at.utc;
    use chrono::{Datelike, Timelike};
    document.set_metadata(
        Metadata::new()
            .title(format!("{}: {}", copy.heading, copy.title))
            .creator("cmo-orchestrator".to_string())
            .language("en".to_string())
            .creation_date(
                PdfDateTime::new(at.year() as u16)
                    .month(at.month() as u8)
                    .day(at.day() as u8)
                    .hour(at.hour() as u8)
                    .minute(at.minute() as u8)
                    .second(at.second() as u8)
                    .utc_offset_hour(0)
                    .utc_offset_minute(0),
            ),
    );
    let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT).ok_or("page size")?;
    let black = Fill {
        paint: rgb::Color::new(0, 0, 0).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    };
    let grey = Fill {
        paint: rgb::Color::new(90, 90, 90).into(),
        ..black.clone()
    };
    for (index, marks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let footer = format!(
            "{} · page {} of {count} · generated {}",
            copy.heading,
            index + 1,
            copy.generated_at.utc_text()
        );
        let footer_mark = Mark::Text {
            x: MARGIN,
            y: PAGE_HEIGHT - MARGIN + 10.0,
            size: 7.0,
            grey: true,
            text: footer,
        };
        for mark in marks.iter().chain(std::iter::once(&footer_mark)) {
            match mark {
                Mark::Text {
                    x,
                    y,
                    size,
                    grey: is_grey,
                    text,
                } => {
                    surface.set_fill(Some(if *is_grey {
                        grey.clone()
                    } else {
                        black.clone()
                    }));
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        font.clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Mark::Rule { y } => {
                    let mut path = PathBuilder::new();
                    path.move_to(MARGIN, *y);
                    path.line_to(PAGE_WIDTH - MARGIN, *y);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: 0.5,
                            ..Default::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wrap_at_spaces_and_inside_long_words() {
        let lines = wrap("alpha beta gamma delta", BODY, 60.0);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines.iter().all(|l| Metrics::get().width(l, BODY) <= 60.0));
        assert_eq!(lines.join(" "), "alpha beta gamma delta");
        let hash = "4e7a".repeat(20);
        let lines = wrap(&hash, BODY, 100.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), hash);
        assert_eq!(wrap("one\ntwo", BODY, 300.0), ["one", "two"]);
    }
}
