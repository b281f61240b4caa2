//! Labels drawn from their recorded content: one layout (a scene in millimetres) drawn as
//! SVG for screens, PDF for office printers (a roll's page per label, or an A4 sheet) and
//! ZPL for Zebra printers (which encode the symbols themselves: `^BX`, `^BC`). The layout
//! follows ST-001 §6: Data Matrix modules 0.25 to 1 mm with a quiet zone, Code 128 with a
//! module of 0.25 mm (0.17 at least), quiet zones of 10 modules and bars at least 5 mm
//! (or 15% of their length) high.

mod pdf;
mod svg;
pub mod symbols;
mod zpl;

use autolog_domain::labels::content::LabelContent;
use autolog_domain::labels::template::Stock;

pub use pdf::pdf;
pub use svg::svg;
pub use zpl::zpl;

/// Why a label cannot be drawn.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LabelError {
    #[error("{0}")]
    Symbol(String),
    #[error("the label stock ({width_mm} x {height_mm} mm) is too small: {what}")]
    TooSmall {
        width_mm: u32,
        height_mm: u32,
        what: String,
    },
}

/// A label laid out, in millimetres from its top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width_mm: f64,
    pub height_mm: f64,
    pub media: String,
    pub items: Vec<Item>,
}

/// What a label is drawn with.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A Data Matrix: its top-left corner, module size and modules; `data` and `gs1` for
    /// printers that encode it themselves.
    Matrix {
        x: f64,
        y: f64,
        module: f64,
        rows: Vec<Vec<bool>>,
        data: String,
        gs1: bool,
    },
    /// A Code 128 symbol: top-left corner, module width, bar height, modules (1 bar).
    Linear {
        x: f64,
        y: f64,
        module: f64,
        height: f64,
        bars: Vec<u8>,
        data: String,
        gs1: bool,
    },
    /// A line of text: left end of its baseline, size (the em, in mm), bold.
    Text {
        x: f64,
        y: f64,
        size: f64,
        bold: bool,
        text: String,
    },
    /// A box drawn around a keyboard check character.
    Frame { x: f64, y: f64, w: f64, h: f64 },
}

const MARGIN: f64 = 3.0;
const GAP: f64 = 2.0;
/// Helvetica's average advance, as a share of the em: enough to wrap text safely.
const ADVANCE: f64 = 0.56;

/// Lays a recorded label out on its stock.
pub fn layout(content: &LabelContent, stock: &Stock) -> Result<Scene, LabelError> {
    let (w, h) = (f64::from(stock.width_mm), f64::from(stock.height_mm));
    let too_small = |what: String| LabelError::TooSmall {
        width_mm: stock.width_mm,
        height_mm: stock.height_mm,
        what,
    };
    let gs1 = content.container_kind == "shipper";
    let rows = symbols::data_matrix(&content.matrix, gs1)?;
    let n = rows.len() as f64;
    // As large as practical, up to 0.5 mm, within half the label's height.
    let module = ((h - 2.0 * MARGIN) * 0.5 / (n + 2.0)).min(0.5);
    if module < 0.25 {
        return Err(too_small(format!(
            "its Data Matrix of {n} modules needs modules of 0.25 mm at least"
        )));
    }
    let mut items = vec![Item::Matrix {
        x: MARGIN + module,
        y: MARGIN + module,
        module,
        rows,
        data: content.matrix.clone(),
        gs1,
    }];
    let side = (n + 2.0) * module;
    let text_x = MARGIN + side + GAP;
    let text_bottom = text_block(content, text_x, w - MARGIN - text_x, &mut items);
    let mut y = (MARGIN + side).max(text_bottom) + GAP;
    for data in &content.linear {
        y = linear(data, gs1, w, y, &mut items).map_err(|e| match e {
            LabelError::TooSmall { what, .. } => too_small(what),
            other => other,
        })?;
    }
    if y - GAP > h - MARGIN {
        return Err(too_small(format!(
            "its symbols and text need {:.0} mm of height",
            y - GAP + MARGIN
        )));
    }
    Ok(Scene {
        width_mm: w,
        height_mm: h,
        media: stock.media.clone(),
        items,
    })
}

/// The eye-readable lines, wrapped to `width`; a check character boxed after its line.
/// Returns the bottom of the block.
fn text_block(content: &LabelContent, x: f64, width: f64, items: &mut Vec<Item>) -> f64 {
    let mut y = MARGIN;
    for line in &content.text {
        let size = if line.strong { 3.0 } else { 2.3 };
        let per_line = ((width / (size * ADVANCE)).floor() as usize).max(8);
        for (i, chunk) in wrap(&line.text, per_line).into_iter().enumerate() {
            y += size * 1.2;
            let length = chunk.chars().count() as f64 * size * ADVANCE;
            items.push(Item::Text {
                x,
                y,
                size,
                bold: line.strong,
                text: chunk,
            });
            if let (Some(k), 0) = (line.boxed, i) {
                let kx = x + length + 1.5;
                items.push(Item::Frame {
                    x: kx - 0.6,
                    y: y - size * 0.9,
                    w: size * 0.8 + 1.2,
                    h: size * 1.15,
                });
                items.push(Item::Text {
                    x: kx,
                    y,
                    size,
                    bold: true,
                    text: k.to_string(),
                });
            }
        }
    }
    y + 1.0
}

/// Words of `text` in lines of at most `per_line` characters (a longer word is cut).
pub(crate) fn wrap(text: &str, per_line: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let fits = current.chars().count() + 1 + word.chars().count() <= per_line;
        if !current.is_empty() && !fits {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > per_line {
            let rest: String = current.chars().skip(per_line).collect();
            lines.push(current.chars().take(per_line).collect());
            current = rest;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// A Code 128 symbol under what is above it, with quiet zones of 10 modules; returns the
/// top of what comes next.
fn linear(data: &str, gs1: bool, w: f64, y: f64, items: &mut Vec<Item>) -> Result<f64, LabelError> {
    let bars = symbols::code128(data, gs1)?;
    let count = bars.len() as f64;
    let module = ((w - 2.0 * MARGIN) / (count + 20.0)).min(0.25);
    if module < 0.17 {
        return Err(LabelError::TooSmall {
            width_mm: 0,
            height_mm: 0,
            what: format!("the Code 128 of {data} ({count} modules) needs {:.0} mm of width at a module of 0.17 mm", (count + 20.0) * 0.17 + 2.0 * MARGIN),
        });
    }
    let height = (0.15 * count * module).max(5.0);
    items.push(Item::Linear {
        x: MARGIN + 10.0 * module,
        y,
        module,
        height,
        bars,
        data: data.to_string(),
        gs1,
    });
    let mut next = y + height;
    if gs1 {
        // The human-readable interpretation of a GS1-128 symbol, under it.
        next += 2.6;
        items.push(Item::Text {
            x: MARGIN + 10.0 * module,
            y: next,
            size: 2.2,
            bold: false,
            text: data.to_string(),
        });
    }
    Ok(next + GAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_at_words() {
        assert_eq!(
            wrap("Store at -196 °C to -150 °C", 12),
            vec!["Store at", "-196 °C to", "-150 °C"]
        );
        assert_eq!(
            wrap("ABCDEFGHIJKLMNOPQRSTU", 8),
            vec!["ABCDEFGH", "IJKLMNOP", "QRSTU"]
        );
    }
}
