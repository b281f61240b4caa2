//! A label as PDF: on a roll, a page the label's size; on A4 sheets, the label at the top
//! left of the page with its outline to cut along. Helvetica (one of the 14 standard
//! fonts, nothing embedded) in WinAnsi encoding; modules and bars as filled rectangles.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::svg::runs;
use super::{Item, Scene};

const PT_PER_MM: f32 = 72.0 / 25.4;
const A4_MM: (f32, f32) = (210.0, 297.0);
/// Where a label sits on an A4 sheet, from the top left.
const SHEET_OFFSET_MM: f32 = 10.0;

/// The scene as a one-page PDF; `title` goes in the document's information.
pub fn pdf(scene: &Scene, title: &str) -> Vec<u8> {
    let sheet = scene.media == "a4_sheet";
    let (page_w, page_h) = if sheet {
        A4_MM
    } else {
        (scene.width_mm as f32, scene.height_mm as f32)
    };
    let offset = if sheet { SHEET_OFFSET_MM } else { 0.0 };
    let mut pen = Pen {
        content: Content::new(),
        page_h,
        offset,
    };
    if sheet {
        pen.outline(scene.width_mm as f32, scene.height_mm as f32);
    }
    for item in &scene.items {
        pen.draw(item);
    }
    let (catalog, pages, page, font, bold, contents, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
        Ref::new(7),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, page_w * PT_PER_MM, page_h * PT_PER_MM));
    p.parent(pages);
    p.contents(contents);
    p.resources()
        .fonts()
        .pair(Name(b"F1"), font)
        .pair(Name(b"F2"), bold);
    p.finish();
    for (id, name) in [(font, b"Helvetica".as_slice()), (bold, b"Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(name))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.stream(contents, &pen.content.finish());
    pdf.document_info(info)
        .title(TextStr(title))
        .creator(TextStr("Autolog"));
    pdf.finish()
}

struct Pen {
    content: Content,
    page_h: f32,
    offset: f32,
}

impl Pen {
    /// A rectangle given from its top-left corner in millimetres on the label.
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        let (x, y, w, h) = (x as f32, y as f32, w as f32, h as f32);
        let left = (x + self.offset) * PT_PER_MM;
        let bottom = (self.page_h - self.offset - y - h) * PT_PER_MM;
        self.content
            .rect(left, bottom, w * PT_PER_MM, h * PT_PER_MM);
    }

    fn outline(&mut self, w: f32, h: f32) {
        self.content.set_line_width(0.3);
        self.rect(0.0, 0.0, f64::from(w), f64::from(h));
        self.content.stroke();
    }

    fn draw(&mut self, item: &Item) {
        match item {
            Item::Matrix {
                x, y, module, rows, ..
            } => {
                for (r, row) in rows.iter().enumerate() {
                    for (start, len) in runs(row.iter().copied()) {
                        let top = y + r as f64 * module;
                        self.rect(x + start as f64 * module, top, len as f64 * module, *module);
                    }
                }
                self.content.fill_nonzero();
            }
            Item::Linear {
                x,
                y,
                module,
                height,
                bars,
                ..
            } => {
                for (start, len) in runs(bars.iter().map(|b| *b == 1)) {
                    self.rect(x + start as f64 * module, *y, len as f64 * module, *height);
                }
                self.content.fill_nonzero();
            }
            Item::Text {
                x,
                y,
                size,
                bold,
                text,
            } => self.text(*x, *y, *size, *bold, text),
            Item::Frame { x, y, w, h } => {
                self.content.set_line_width(0.7);
                self.rect(*x, *y, *w, *h);
                self.content.stroke();
            }
        }
    }

    fn text(&mut self, x: f64, y: f64, size: f64, bold: bool, text: &str) {
        let font = if bold { Name(b"F2") } else { Name(b"F1") };
        let left = (x as f32 + self.offset) * PT_PER_MM;
        let baseline = (self.page_h - self.offset - y as f32) * PT_PER_MM;
        self.content
            .begin_text()
            .set_font(font, size as f32 * PT_PER_MM)
            .next_line(left, baseline)
            .show(Str(&win_ansi(text)))
            .end_text();
    }
}

/// Text in WinAnsi (Windows-1252): Latin-1 as is, the ellipsis and typographic quotes
/// mapped; anything else becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '–' => 0x96,
            '—' => 0x97,
            c if (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32)) => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}
