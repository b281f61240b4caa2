//! A label as ZPL II for Zebra printers at 203 dpi (8 dots per mm): the printer encodes the
//! symbols itself (`^BX` Data Matrix ECC 200, `^BC` Code 128, mode A for ISBT 128 data,
//! mode D for GS1-128), text in font 0 with UTF-8 (`^CI28`), hex-escaped (`^FH`). Text
//! is written in ASCII (`°` as `deg`, `ü` as `ue`...): a printer's resident font 0 does not
//! carry every Latin glyph, and a missing glyph prints as nothing. The PDF and SVG keep
//! the text as recorded.

use std::fmt::Write;

use super::{Item, Scene};

/// Dots per millimetre of a 203 dpi printhead.
pub const DOTS_PER_MM: f64 = 8.0;

fn dots(mm: f64) -> i64 {
    (mm * DOTS_PER_MM).round() as i64
}

/// The scene as one ZPL label format (`^XA` ... `^XZ`).
pub fn zpl(scene: &Scene) -> String {
    let mut out = format!(
        "^XA^CI28^PW{}^LL{}^LH0,0\n",
        dots(scene.width_mm),
        dots(scene.height_mm)
    );
    for item in &scene.items {
        let _ = write_item(&mut out, item);
    }
    out.push_str("^XZ\n");
    out
}

/// One item of the scene: a symbol the printer encodes, a line of text, a box.
fn write_item(out: &mut String, item: &Item) -> std::fmt::Result {
    match item {
        Item::Matrix {
            x,
            y,
            module,
            data,
            gs1,
            ..
        } => {
            // `_` escapes: `_1` is FNC1 (a GS1 symbol starts with it, and it separates
            // variable-length elements).
            let data = if *gs1 {
                format!(
                    "_1{}",
                    super::symbols::gs1_element_string(data).replace('\u{1d}', "_1")
                )
            } else {
                data.clone()
            };
            writeln!(
                out,
                "^FO{},{}^BXN,{},200,,,,_^FD{data}^FS",
                dots(*x),
                dots(*y),
                dots(*module).max(1)
            )
        }
        Item::Linear {
            x,
            y,
            module,
            height,
            data,
            gs1,
            ..
        } => {
            let mode = if *gs1 { "D" } else { "A" };
            writeln!(
                out,
                "^FO{},{}^BY{}^BCN,{},N,N,N,{mode}^FD{data}^FS",
                dots(*x),
                dots(*y),
                dots(*module).max(1),
                dots(*height)
            )
        }
        Item::Text {
            x, y, size, text, ..
        } => {
            let h = dots(*size);
            writeln!(
                out,
                "^FO{},{}^A0N,{h},{h}^FH\\^FD{}^FS",
                dots(*x),
                dots(*y - *size * 0.8),
                hex_escape(text)
            )
        }
        Item::Frame { x, y, w, h } => {
            writeln!(
                out,
                "^FO{},{}^GB{},{},2^FS",
                dots(*x),
                dots(*y),
                dots(*w),
                dots(*h)
            )
        }
    }
}

/// ZPL's command characters and the escape itself as `\hh` under `^FH\`.
fn hex_escape(text: &str) -> String {
    ascii(text)
        .replace('\\', "\\5C")
        .replace('^', "\\5E")
        .replace('~', "\\7E")
}

/// The text in printable ASCII: the Latin letters of the label's languages spelt out,
/// anything else `?`.
fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let spelt = match c {
            '°' => "deg",
            '…' => "...",
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'Ä' => "Ae",
            'Ö' => "Oe",
            'Ü' => "Ue",
            'ß' => "ss",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'É' | 'È' | 'Ê' => "E",
            'à' | 'â' => "a",
            'À' | 'Â' => "A",
            'ç' => "c",
            'Ç' => "C",
            'ô' => "o",
            'Ô' => "O",
            'î' | 'ï' => "i",
            'û' | 'ù' => "u",
            c if c.is_ascii() && !c.is_ascii_control() => {
                out.push(c);
                continue;
            }
            _ => "?",
        };
        out.push_str(spelt);
    }
    out
}
