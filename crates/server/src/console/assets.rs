//! The console's static files, compiled into the binary and served under names that carry
//! their content hash (`/assets/console-<hash>.css`), so a browser may keep them for a
//! year and never runs a stale one. Nothing is fetched from anywhere else.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// htmx 2.0.11 (0BSD, `htmx-LICENSE.txt`), as published on npm (`htmx.org`, `dist/htmx.min.js`).
const HTMX: &[u8] = include_bytes!("assets/htmx-2.0.11.min.js");

const STYLESHEET: &[u8] = include_bytes!("assets/console.css");
const SCRIPT: &[u8] = include_bytes!("assets/console.js");

/// One served file: its hashed name and its bytes.
pub(crate) struct Asset {
    pub name: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            name: format!("{stem}-{hash}.{extension}"),
            content_type,
            bytes,
        }
    }

    /// The path a page links to.
    pub fn href(&self) -> String {
        format!("/assets/{}", self.name)
    }
}

/// The console's files.
pub(crate) struct Assets {
    pub stylesheet: Asset,
    pub script: Asset,
    pub htmx: Asset,
}

pub(crate) static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    stylesheet: Asset::new("console", "css", "text/css; charset=utf-8", STYLESHEET),
    script: Asset::new("console", "js", "text/javascript; charset=utf-8", SCRIPT),
    htmx: Asset::new("htmx", "js", "text/javascript; charset=utf-8", HTMX),
});

/// `GET /assets/{name}`: a file by its hashed name, cacheable for a year.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let assets = &*ASSETS;
    let found = [&assets.stylesheet, &assets.script, &assets.htmx]
        .into_iter()
        .find(|a| a.name == name);
    match found {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// htmx's SHA-256 as published on npm: the vendored file is that file.
    const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";

    #[test]
    fn the_vendored_htmx_is_the_published_file() {
        let digest: String = Sha256::digest(HTMX)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, HTMX_SHA256);
    }

    #[test]
    fn names_carry_the_content_hash() {
        let a = &ASSETS.stylesheet;
        assert!(a.name.starts_with("console-") && a.name.ends_with(".css"));
        assert_ne!(ASSETS.script.name, ASSETS.htmx.name);
        assert_eq!(a.href(), format!("/assets/{}", a.name));
    }
}
