//! Embeds the UI kit's files (Bootstrap Italia, pinned in `assets/package-lock.json`) from
//! `assets/node_modules`, where `npm ci --prefix assets` puts them: varco serves them itself, so
//! that no citizen's browser fetches anything from a third-party host.

use std::path::{Path, PathBuf};

/// (name served under `/.sso/assets/`, path inside the package).
const FILES: &[(&str, &str)] = &[
    (
        "bootstrap-italia.min.css",
        "dist/css/bootstrap-italia.min.css",
    ),
    (
        "fonts/titillium-web-regular.woff2",
        "dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-regular.woff2",
    ),
    (
        "fonts/titillium-web-italic.woff2",
        "dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-italic.woff2",
    ),
    (
        "fonts/titillium-web-600.woff2",
        "dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-600.woff2",
    ),
    (
        "fonts/titillium-web-700.woff2",
        "dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-700.woff2",
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let kit = manifest.join("../assets/node_modules/bootstrap-italia");
    let package = kit.join("package.json");
    println!("cargo:rerun-if-changed={}", package.display());
    let Ok(text) = std::fs::read_to_string(&package) else {
        panic!(
            "\n\nvarco's pages are built with Bootstrap Italia, which is not installed.\n\
             Run `npm ci --prefix assets` in the repository (see the README), then build again.\n\
             (looked for {})\n",
            package.display()
        );
    };
    let version = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("\"version\": \"")
                .and_then(|v| v.strip_suffix("\","))
        })
        .expect("a version in bootstrap-italia's package.json");
    let mut out = format!(
        "/// The Bootstrap Italia release embedded.\npub const KIT_VERSION: &str = {version:?};\n"
    );
    out.push_str("/// The kit's files: (name under `/.sso/assets/`, bytes).\npub const KIT_FILES: &[(&str, &[u8])] = &[\n");
    for (name, inside) in FILES {
        let path = kit.join(inside);
        assert!(
            Path::new(&path).is_file(),
            "{} is missing: run `npm ci --prefix assets` again",
            path.display()
        );
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("kit.rs");
    std::fs::write(dest, out).expect("write kit.rs");
}
