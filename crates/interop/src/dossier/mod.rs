//! The inspection dossier as one PDF/A-3b file: the human-readable report (`report.rs`)
//! on A4 pages, with the dossier's JSON embedded as its source (`dossier.json`,
//! AFRelationship Source), so the printed copy and the machine copy are one file. Drawn
//! with `krilla`, which checks PDF/A-3b as it writes; the font (DejaVu Sans Condensed,
//! Bitstream Vera licence) is compiled into the binary and embedded, subset, in the file.

pub mod report;

use std::sync::Arc;

use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::Point;
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};
use serde_json::Value;

use report::Line;

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed-Bold.ttf");

/// A4 in points, and the margins.
const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 48.0;

/// Why the PDF could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DossierPdfError {
    #[error("the embedded font cannot be read")]
    Font,
    #[error("the PDF/A-3b document could not be written: {0}")]
    Pdf(String),
}

/// When the dossier was exported, as the PDF's dates say it.
#[derive(Debug, Clone, Copy)]
pub struct Exported {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The dossier's report as a PDF/A-3b document with the dossier's JSON embedded.
pub fn pdf(dossier: &Value, exported: Exported) -> Result<Vec<u8>, DossierPdfError> {
    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A3_B)
        .finish()
        .map_err(|e| DossierPdfError::Pdf(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        ..Default::default()
    };
    let mut document = Document::new_with(settings);
    let fonts = Fonts {
        regular: Font::new(Arc::new(REGULAR.to_vec()).into(), 0).ok_or(DossierPdfError::Font)?,
        bold: Font::new(Arc::new(BOLD.to_vec()).into(), 0).ok_or(DossierPdfError::Font)?,
    };
    draw_pages(&mut document, &fonts, &report::lines(dossier));
    let date = DateTime::new(exported.year)
        .month(exported.month)
        .day(exported.day)
        .hour(exported.hour)
        .minute(exported.minute)
        .second(exported.second)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    let coi = dossier["coi"].as_str().unwrap_or("");
    document.set_metadata(
        Metadata::new()
            .title(format!("Inspection dossier of chain {coi}"))
            .language("en".into())
            .creator("Autolog".into())
            .creation_date(date),
    );
    let json =
        serde_json::to_vec_pretty(dossier).map_err(|e| DossierPdfError::Pdf(e.to_string()))?;
    document
        .embed_file(EmbeddedFile {
            path: "dossier.json".into(),
            mime_type: MimeType::new("application/json"),
            description: Some(format!("The dossier of chain {coi} (autolog-dossier/1): verify it with autolog dossier verify or docs/dossier_verify.py")),
            association_kind: AssociationKind::Source,
            data: Arc::new(json).into(),
            modification_date: Some(date),
            compress: None,
            location: None,
        })
        .ok_or_else(|| DossierPdfError::Pdf("the dossier's JSON could not be embedded".into()))?;
    document
        .finish()
        .map_err(|e| DossierPdfError::Pdf(format!("{e:?}")))
}

struct Fonts {
    regular: Font,
    bold: Font,
}

/// The lines, wrapped to the page's width, over as many A4 pages as they need.
fn draw_pages(document: &mut Document, fonts: &Fonts, lines: &[Line]) {
    let mut placed: Vec<(Font, f32, String, f32)> = Vec::new();
    for line in lines {
        let (font, size, body, indent) = match line {
            Line::Title(t) => (&fonts.bold, 15.0, t.as_str(), 0.0),
            Line::Heading(t) => (&fonts.bold, 11.5, t.as_str(), 0.0),
            Line::Text(t) => (&fonts.regular, 8.5, t.as_str(), 0.0),
            Line::Changed(t) => (&fonts.bold, 8.5, t.as_str(), 8.0),
            Line::Small(t) => (&fonts.regular, 6.5, t.as_str(), 0.0),
            Line::Gap => {
                placed.push((fonts.regular.clone(), 8.5, String::new(), 0.0));
                continue;
            }
        };
        if matches!(line, Line::Heading(_)) {
            placed.push((fonts.regular.clone(), 6.0, String::new(), 0.0));
        }
        let per_line = (((PAGE.0 - 2.0 * MARGIN - indent) / (size * 0.47)) as usize).max(20);
        for chunk in crate::labels::wrap(&printable(body), per_line) {
            placed.push((font.clone(), size, chunk, indent));
        }
    }
    let mut rest = placed.as_slice();
    while !rest.is_empty() {
        rest = draw_page(document, rest);
    }
}

/// Draws lines until the page is full; returns those left for the next page.
fn draw_page<'a>(
    document: &mut Document,
    lines: &'a [(Font, f32, String, f32)],
) -> &'a [(Font, f32, String, f32)] {
    let Some(settings) = PageSettings::from_wh(PAGE.0, PAGE.1) else {
        return &[];
    };
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    let mut y = MARGIN;
    let mut drawn = 0;
    for (font, size, text, indent) in lines {
        let next = y + size * 1.35;
        if next > PAGE.1 - MARGIN && drawn > 0 {
            break;
        }
        y = next;
        drawn += 1;
        if !text.is_empty() {
            surface.draw_text(
                Point::from_xy(MARGIN + indent, y),
                font.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
    }
    surface.finish();
    page.finish();
    &lines[drawn..]
}

/// The text without control characters (a PDF line holds none).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
