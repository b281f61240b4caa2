//! The symbols of a label: Data Matrix ECC 200 (ISO/IEC 16022) for the 2-D message and
//! Code 128 (ISO/IEC 15417) for linear bar codes, GS1 variants with FNC1. Encoding is the
//! `datamatrix` and `barcoders` crates'; this module only chooses what they are given.

use barcoders::sym::code128::Code128;
use datamatrix::{DataMatrix, SymbolList};

use super::LabelError;

/// ASCII 29, the separator after a variable-length GS1 element.
const GS: char = '\u{1d}';

/// A Data Matrix as rows of modules (`true` dark), without its quiet zone.
pub fn data_matrix(data: &str, gs1: bool) -> Result<Vec<Vec<bool>>, LabelError> {
    let symbols = SymbolList::default().enforce_square();
    let encoded = if gs1 {
        DataMatrix::encode_gs1(gs1_element_string(data).as_bytes(), symbols)
    } else {
        DataMatrix::encode(data.as_bytes(), symbols)
    }
    .map_err(|e| LabelError::Symbol(format!("Data Matrix of {data}: {e:?}")))?;
    let bitmap = encoded.bitmap();
    let (width, height) = (bitmap.width(), bitmap.height());
    let mut rows = vec![vec![false; width]; height];
    for (x, y) in bitmap.pixels() {
        rows[y][x] = true;
    }
    Ok(rows)
}

/// A Code 128 symbol as modules (1 bar, 0 space), quiet zones excluded. `gs1`: data in
/// parenthesised form, encoded as GS1-128 (FNC1 after the start character).
pub fn code128(data: &str, gs1: bool) -> Result<Vec<u8>, LabelError> {
    let text = if gs1 {
        format!(
            "Ć\u{179}{}",
            gs1_element_string(data).replace(GS, "\u{179}")
        )
    } else {
        with_code_sets(data)
    };
    let symbol =
        Code128::new(&text).map_err(|e| LabelError::Symbol(format!("Code 128 of {data}: {e}")))?;
    Ok(symbol.encode())
}

/// `(00)123(10)AB(420)75` as a scanner sends it: AIs and values, GS after a
/// variable-length value that is not last.
pub fn gs1_element_string(parenthesised: &str) -> String {
    let mut out = String::new();
    let parts: Vec<&str> = parenthesised.split('(').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let (ai, value) = part.split_once(')').unwrap_or((part, ""));
        out.push_str(ai);
        out.push_str(value);
        let fixed = matches!(ai, "00" | "01" | "17" | "414");
        if !fixed && i + 1 < parts.len() {
            out.push(GS);
        }
    }
    out
}

/// Code set B for text, code set C for runs of four digits or more (ST-001 §6.1: an
/// encoder shortens the symbol with set C); `barcoders` takes the sets as marked.
fn with_code_sets(data: &str) -> String {
    const B: char = 'Ɓ';
    const C: char = 'Ć';
    let chars: Vec<char> = data.chars().collect();
    let mut out = String::new();
    let mut set = None;
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if run >= 4 {
            // An odd run keeps its first digit in set B.
            if run % 2 == 1 {
                if set != Some(B) {
                    out.push(B);
                    set = Some(B);
                }
                out.push(chars[i]);
                i += 1;
            }
            if set != Some(C) {
                out.push(C);
                set = Some(C);
            }
            let even = run - run % 2;
            out.extend(&chars[i..i + even]);
            i += even;
            continue;
        }
        if set != Some(B) {
            out.push(B);
            set = Some(B);
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_go_to_code_set_c() {
        assert_eq!(with_code_sets("=G12341765432170"), "Ɓ=GĆ12341765432170");
        assert_eq!(with_code_sets("&/CHA999926000001"), "Ɓ&/CHAĆ999926000001");
        assert_eq!(with_code_sets("=<S0001199"), "Ɓ=<S0Ć001199");
    }

    #[test]
    fn gs1_separators_follow_variable_length_values() {
        assert_eq!(
            gs1_element_string("(00)106141412345678908(10)CHA999926000001*(420)75013"),
            "00106141412345678908".to_string() + "10CHA999926000001*\u{1d}42075013"
        );
    }

    #[test]
    fn symbols_encode() {
        let m = data_matrix("=+02000&/CHA999926000001=<S00011A0", false).expect("encodes");
        assert_eq!(m.len(), m[0].len());
        let bars = code128("=G12341765432170", false).expect("encodes");
        assert!(bars.len() > 100);
        assert!(code128("(00)106141412345678908", true).is_ok());
    }
}
