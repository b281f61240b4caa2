//! Every label's symbols, drawn the three ways Autolog draws them and rasterised by
//! independent programs (SVG by Debian's headless Chromium, PDF by poppler's pdftoppm, ZPL
//! by the `zpl` crate's renderer), decoded by an independent decoder (`rxing`): each gives
//! back exactly the data structures recorded, check characters and flags included. The
//! pictures are written to `target/label-pictures/` for a person to look at (and for
//! docs/labels.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use autolog_domain::identifiers::{Coi, Din, UnitId};
use autolog_domain::labels::content::{self, Common, LabelContent};
use autolog_domain::labels::template::{phrases, Stock};
use autolog_domain::Instant;
use autolog_interop::labels::{layout, pdf, svg, symbols, zpl, Item, Scene};
use jiff::tz::TimeZone;
use rxing::BarcodeFormat;
use zpl::output::Adapter;

fn at(text: &str) -> Instant {
    Instant::parse_rfc3339("at", text).expect("valid")
}

fn coi() -> Coi {
    Coi::parse("coi", "CHA999926000001*").expect("valid")
}

fn common(coi: &Coi) -> Common<'_> {
    Common {
        coi,
        description: "Autologous anti-CD19 CAR-T cells",
        storage_min_celsius: -196.0,
        storage_max_celsius: -150.0,
        patient_key: Some("PK-0001"),
        phrases: phrases("en"),
        omitted: &[],
    }
}

/// The three labels: a bag (ST-001's worked DIN), a final unit, a shipper.
fn labels() -> Vec<(&'static str, LabelContent, Stock)> {
    let coi = coi();
    let din = Din::parse("din", "A999926000123").expect("valid");
    let paris = TimeZone::get("Europe/Paris").expect("zone");
    let bag = content::bag_label(
        &common(&coi),
        &content::Bag {
            din: &din,
            number: 1,
            of: 2,
            product_code: "S1001",
            collected_at: at("2026-03-02T09:30:00Z"),
            expires_at: Some(at("2026-03-05T09:30:00Z")),
            zone: &paris,
            site_name: "Paris Apheresis Centre",
        },
    );
    let unit_id = UnitId::new(&coi, "S0001", "A0").expect("valid");
    let newark = TimeZone::get("America/New_York").expect("zone");
    let unit = content::unit_label(
        &common(&coi),
        &content::Unit {
            unit: &unit_id,
            produced_at: at("2026-04-01T16:00:00Z"),
            expires_at: at("2027-04-01T16:00:00Z"),
            zone: &newark,
            releasing_site: "Newark Cell Manufacturing",
        },
    );
    let shipper = content::shipper_label(
        &common(&coi),
        &content::Shipper {
            sscc: "106141412345678908",
            from_site: "Newark Cell Manufacturing",
            to_site: "Hôpital Saint-Louis",
            to_postal_code: Some("75010"),
        },
    );
    let stock = |w, h, media: &str| Stock {
        width_mm: w,
        height_mm: h,
        media: media.into(),
        language: "en".into(),
    };
    vec![
        ("collection-bag", bag, stock(100, 70, "roll")),
        ("final-unit", unit, stock(100, 70, "a4_sheet")),
        ("shipper", shipper, stock(150, 100, "roll")),
    ]
}

/// What each symbol of a scene must decode to, with where it is (mm) and its format.
fn expected(scene: &Scene) -> Vec<(BarcodeFormat, [f64; 4], String)> {
    scene
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Matrix {
                x,
                y,
                module,
                rows,
                data,
                gs1,
            } => {
                let side = rows.len() as f64 * module;
                let pad = 2.0 * module;
                let text = if *gs1 {
                    symbols::gs1_element_string(data)
                } else {
                    data.clone()
                };
                Some((
                    BarcodeFormat::DATA_MATRIX,
                    [x - pad, y - pad, side + 2.0 * pad, side + 2.0 * pad],
                    text,
                ))
            }
            Item::Linear {
                x,
                y,
                module,
                height,
                bars,
                data,
                gs1,
            } => {
                let pad = 10.0 * module;
                let width = bars.len() as f64 * module;
                let text = if *gs1 {
                    symbols::gs1_element_string(data)
                } else {
                    data.clone()
                };
                Some((
                    BarcodeFormat::CODE_128,
                    [x - pad, y - 1.0, width + 2.0 * pad, height + 2.0],
                    text,
                ))
            }
            _ => None,
        })
        .collect()
}

/// A greyscale raster: width, height, one byte per pixel.
struct Raster {
    width: usize,
    height: usize,
    luma: Vec<u8>,
}

impl Raster {
    fn from_png(bytes: &[u8]) -> Raster {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let channels = info.color_type.samples();
        let luma = buf[..info.buffer_size()]
            .chunks(channels)
            .map(|p| match channels {
                1 | 2 => p[0],
                _ => {
                    ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                        as u8
                }
            })
            .collect();
        Raster {
            width: info.width as usize,
            height: info.height as usize,
            luma,
        }
    }

    /// The pixels of a region given in millimetres, at `px_per_mm` and `offset_mm`.
    fn crop(&self, [x, y, w, h]: [f64; 4], px_per_mm: f64, offset_mm: f64) -> (Vec<u8>, u32, u32) {
        let to_px = |mm: f64| ((mm + offset_mm) * px_per_mm).round().max(0.0) as usize;
        let (x0, y0) = (to_px(x).min(self.width), to_px(y).min(self.height));
        let (x1, y1) = (to_px(x + w).min(self.width), to_px(y + h).min(self.height));
        let mut out = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for row in y0..y1 {
            out.extend_from_slice(&self.luma[row * self.width + x0..row * self.width + x1]);
        }
        (out, (x1 - x0) as u32, (y1 - y0) as u32)
    }
}

/// Decodes every symbol of the scene from the raster; returns what each gave back.
fn decode_all(
    scene: &Scene,
    raster: &Raster,
    px_per_mm: f64,
    offset_mm: f64,
) -> Vec<(String, String)> {
    expected(scene)
        .into_iter()
        .map(|(format, region, want)| {
            let (luma, w, h) = raster.crop(region, px_per_mm, offset_mm);
            let got = rxing::helpers::detect_in_luma(luma, w, h, Some(format))
                .map(|r| r.getText().to_string())
                .unwrap_or_else(|e| format!("(not decoded: {e})"));
            (want, got)
        })
        .collect()
}

fn assert_round_trip(name: &str, how: &str, pairs: &[(String, String)]) {
    assert!(!pairs.is_empty(), "{name}: no symbol");
    for (want, got) in pairs {
        assert_eq!(
            got, want,
            "{name} ({how}): a symbol decoded to something else"
        );
    }
}

fn pictures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/label-pictures");
    std::fs::create_dir_all(&dir).expect("a folder for the pictures");
    dir
}

/// A program the test needs: present, or (under CI's AUTOLOG_REQUIRE_BROWSER=1) a failure;
/// elsewhere the test is skipped with a message.
fn tool(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var("AUTOLOG_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "{path} is absent and AUTOLOG_REQUIRE_BROWSER=1 (install chromium and poppler-utils)"
    );
    eprintln!("skipped: {path} is absent");
    false
}

#[test]
fn zpl_rendered_by_an_independent_renderer_decodes_to_what_was_recorded() {
    for (name, content, stock) in labels() {
        let scene = layout(&content, &stock).expect("fits");
        let program = zpl(&scene);
        let document = zpl::render(program.as_bytes(), zpl::Options::default()).expect("renders");
        // The renderer's note on font strikes concerns text only; anything else is ours.
        let ours: Vec<&String> = document
            .warnings
            .iter()
            .filter(|w| !w.starts_with("Resident fonts use captured bitmap strikes"))
            .collect();
        assert!(ours.is_empty(), "{name}: {ours:?}");
        let png = zpl::output::Png.encode(&document.labels[0]).expect("a PNG");
        std::fs::write(pictures().join(format!("{name}.zpl.png")), &png).expect("written");
        let raster = Raster::from_png(&png);
        let pairs = decode_all(&scene, &raster, 8.0, 0.0);
        assert_round_trip(name, "ZPL", &pairs);
    }
}

#[test]
fn pdf_rendered_by_poppler_decodes_to_what_was_recorded() {
    if !tool("/usr/bin/pdftoppm") {
        return;
    }
    let dir = tempfile_dir("pdf");
    for (name, content, stock) in labels() {
        let scene = layout(&content, &stock).expect("fits");
        let file = dir.join(format!("{name}.pdf"));
        std::fs::write(&file, pdf(&scene, name)).expect("written");
        let out = dir.join(name);
        let status = Command::new("/usr/bin/pdftoppm")
            .args(["-r", "600", "-gray", "-png", "-singlefile"])
            .arg(&file)
            .arg(&out)
            .status()
            .expect("pdftoppm runs");
        assert!(status.success(), "{name}: pdftoppm failed");
        let raster = Raster::from_png(&std::fs::read(out.with_extension("png")).expect("a PNG"));
        let offset = if stock.media == "a4_sheet" { 10.0 } else { 0.0 };
        let pairs = decode_all(&scene, &raster, 600.0 / 25.4, offset);
        assert_round_trip(name, "PDF", &pairs);
    }
}

#[test]
fn svg_rendered_by_chromium_decodes_to_what_was_recorded() {
    if !tool("/usr/bin/chromium") {
        return;
    }
    let dir = tempfile_dir("svg");
    let scale = 6.0;
    for (name, content, stock) in labels() {
        let scene = layout(&content, &stock).expect("fits");
        let file = dir.join(format!("{name}.svg"));
        std::fs::write(&file, svg(&scene, name)).expect("written");
        let shot = pictures().join(format!("{name}.png"));
        let css_px = |mm: f64| (mm * 96.0 / 25.4).ceil() as u32;
        let status = Command::new("/usr/bin/chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args([
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
            ])
            .args(["--disable-component-update", "--disable-sync"])
            .arg(format!(
                "--user-data-dir={}",
                dir.join(format!("profile-{name}")).display()
            ))
            .arg(format!("--force-device-scale-factor={scale}"))
            .arg(format!(
                "--window-size={},{}",
                css_px(scene.width_mm),
                css_px(scene.height_mm)
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", file.display()))
            .output()
            .expect("chromium runs");
        assert!(
            status.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let raster = Raster::from_png(&std::fs::read(&shot).expect("a screenshot"));
        let pairs = decode_all(&scene, &raster, scale * 96.0 / 25.4, 0.0);
        assert_round_trip(name, "SVG", &pairs);
    }
}

#[test]
fn a_stock_too_small_for_the_symbols_is_refused_saying_so() {
    let (_, content, _) = labels().remove(0);
    let small = Stock {
        width_mm: 40,
        height_mm: 40,
        media: "roll".into(),
        language: "en".into(),
    };
    let e = layout(&content, &small).expect_err("too small");
    assert!(e.to_string().contains("40 x 40 mm) is too small"), "{e}");
}

fn tempfile_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autolog-labels-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}
