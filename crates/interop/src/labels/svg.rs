//! A label as SVG, for screens: millimetres as user units, modules and bars as one path
//! each, text in a sans-serif face, an accessible title.

use std::fmt::Write;

use super::{Item, Scene};

/// The scene as a standalone SVG document; `title` names it for assistive technology.
pub fn svg(scene: &Scene, title: &str) -> String {
    let (w, h) = (scene.width_mm, scene.height_mm);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" viewBox="0 0 {w} {h}" role="img" aria-labelledby="label-title"><title id="label-title">{}</title><rect width="{w}" height="{h}" fill="#fff" stroke="#000" stroke-width="0.2"/>"##,
        escape(title)
    );
    let mut dark = String::new();
    for item in &scene.items {
        match item {
            Item::Matrix {
                x, y, module, rows, ..
            } => matrix_path(&mut dark, *x, *y, *module, rows),
            Item::Linear {
                x,
                y,
                module,
                height,
                bars,
                ..
            } => bars_path(&mut dark, *x, *y, *module, *height, bars),
            Item::Text {
                x,
                y,
                size,
                bold,
                text,
            } => {
                let weight = if *bold { "700" } else { "400" };
                let _ = write!(
                    out,
                    r#"<text x="{x:.2}" y="{y:.2}" font-family="Helvetica, Arial, sans-serif" font-size="{size}" font-weight="{weight}">{}</text>"#,
                    escape(text)
                );
            }
            Item::Frame { x, y, w, h } => {
                let _ = write!(
                    out,
                    r##"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="none" stroke="#000" stroke-width="0.25"/>"##
                );
            }
        }
    }
    let _ = write!(out, r##"<path fill="#000" d="{dark}"/></svg>"##);
    out
}

/// Each run of dark modules in a row as one rectangle.
fn matrix_path(d: &mut String, x: f64, y: f64, module: f64, rows: &[Vec<bool>]) {
    for (r, row) in rows.iter().enumerate() {
        for (start, len) in runs(row.iter().copied()) {
            let top = y + r as f64 * module;
            let left = x + start as f64 * module;
            rect(d, left, top, len as f64 * module, module);
        }
    }
}

fn bars_path(d: &mut String, x: f64, y: f64, module: f64, height: f64, bars: &[u8]) {
    for (start, len) in runs(bars.iter().map(|b| *b == 1)) {
        rect(d, x + start as f64 * module, y, len as f64 * module, height);
    }
}

fn rect(d: &mut String, x: f64, y: f64, w: f64, h: f64) {
    let _ = write!(d, "M{x:.3} {y:.3}h{w:.3}v{h:.3}h-{w:.3}z");
}

/// (start, length) of each run of `true`.
pub(super) fn runs(cells: impl Iterator<Item = bool>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut n = 0;
    for (i, dark) in cells.enumerate() {
        match (dark, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - s));
                start = None;
            }
            _ => {}
        }
        n = i + 1;
    }
    if let Some(s) = start {
        out.push((s, n - s));
    }
    out
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
