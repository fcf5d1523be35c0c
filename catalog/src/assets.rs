//! The static files of varco's pages, served by varco itself under `/.sso/assets/` on every host
//! (no CDN: nothing is fetched from a third-party host by a citizen's browser): Bootstrap Italia
//! and its fonts, embedded from `assets/node_modules` at build time (`build.rs`), and varco's own
//! stylesheet and marks.

use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/kit.rs"));

/// varco's own rules beside the kit.
pub const STYLESHEET: &[u8] = include_bytes!("../assets/varco.css");
/// The SPID mark of AgID's access button.
pub const SPID_MARK: &[u8] = include_bytes!("../assets/spid-ico-circle-bb.svg");

/// One file to serve.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its bytes.
    pub bytes: &'static [u8],
    /// `Content-Type`.
    pub content_type: &'static str,
}

/// The file served as `/.sso/assets/{name}`.
pub fn asset(name: &str) -> Option<Asset> {
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("svg") => "image/svg+xml",
        _ => return None,
    };
    let bytes = match name {
        "varco.css" => STYLESHEET,
        "spid-ico-circle-bb.svg" => SPID_MARK,
        _ => KIT_FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)?,
    };
    Some(Asset {
        bytes,
        content_type,
    })
}

/// A short digest of varco's stylesheet, for its URL: a new build's rules are fetched at once.
pub fn own_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(STYLESHEET);
        d.iter().take(4).map(|b| format!("{b:02x}")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_pages_name_is_served() {
        let css = asset("bootstrap-italia.min.css").expect("kit");
        assert!(
            css.bytes
                .starts_with("\u{feff}/*!\n * Bootstrap Italia".as_bytes())
                || css.bytes.starts_with(b"/*!"),
            "the kit's banner comment is kept"
        );
        let own = std::str::from_utf8(STYLESHEET).expect("utf-8");
        for font in own.split("url(/.sso/assets/").skip(1) {
            let name = font.split(')').next().expect("name");
            assert!(
                asset(name).is_some(),
                "{name} is named by varco.css but not served"
            );
        }
        assert!(asset("spid-ico-circle-bb.svg").is_some());
        assert!(asset("../Cargo.toml").is_none() && asset("x.exe").is_none());
        assert_eq!(own_version().len(), 8);
    }
}
