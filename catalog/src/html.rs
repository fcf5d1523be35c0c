//! HTML escaping, and what every page shares (the [`Site`]); the pages themselves are askama
//! templates in `catalog/templates/`, escaped by default, extending one `layout.html`.

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The templates' escaper: `&`, `<`, `>` and `"` as named entities. Every attribute in the
/// templates is double-quoted (checked by a test), so `'` needs no escape and the pages' text
/// stays readable.
#[derive(Debug, Clone, Copy)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, s: &str) -> std::fmt::Result {
        let mut last = 0;
        for (i, b) in s.bytes().enumerate() {
            let entity = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => continue,
            };
            dest.write_str(&s[last..i])?;
            dest.write_str(entity)?;
            last = i + 1;
        }
        dest.write_str(&s[last..])
    }
}

/// What every page carries besides its content: who runs the portal (the header and the
/// footer name the organisation of `[sp] organization`) and the links AgID asks of PA sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The organisation's name.
    pub owner: String,
    /// Its web site.
    pub owner_url: String,
    /// The accessibility statement (`[portal] accessibility_url`).
    pub accessibility_url: Option<String>,
    /// The privacy notice (`[portal] privacy_url`).
    pub privacy_url: Option<String>,
    /// Cache-busting versions of the two stylesheets.
    pub kit_version: &'static str,
    /// See `kit_version`.
    pub own_version: &'static str,
}

impl Site {
    /// The site of `snapshot`'s configuration.
    pub fn of(snapshot: &policies::Snapshot) -> Self {
        let c = &snapshot.config;
        Self {
            owner: c.sp.organization.name.clone(),
            owner_url: c.sp.organization.url.clone(),
            accessibility_url: c.portal.accessibility_url.clone(),
            privacy_url: c.portal.privacy_url.clone(),
            kit_version: crate::assets::KIT_VERSION,
            own_version: crate::assets::own_version(),
        }
    }

    /// The site of a comune's hosts: its name in the header (linking to its services in the
    /// portal's catalog) and its own accessibility and privacy links, else the portal's.
    pub fn for_comune(snapshot: &policies::Snapshot, comune: &policies::Comune) -> Self {
        let region = Self::of(snapshot);
        let portal = snapshot.config.server.public_url.origin();
        Self {
            owner: comune.name.clone(),
            owner_url: format!("{portal}/catalog?comune={}", comune.ipa_code.as_str()),
            accessibility_url: comune
                .accessibility_url
                .clone()
                .or(region.accessibility_url),
            privacy_url: comune.privacy_url.clone().or(region.privacy_url),
            ..region
        }
    }

    /// A site for tests and tools without a configuration.
    pub fn example() -> Self {
        Self {
            owner: "Regione Toscana".into(),
            owner_url: "https://www.regione.toscana.it".into(),
            accessibility_url: Some("https://form.agid.gov.it/view/esempio".into()),
            privacy_url: Some("https://www.regione.toscana.it/privacy".into()),
            kit_version: crate::assets::KIT_VERSION,
            own_version: crate::assets::own_version(),
        }
    }
}

/// Renders a page template; a template's formatting cannot fail but for a value's `Display`,
/// and then the citizen still gets a page.
pub(crate) fn render(t: &impl askama::Template) -> String {
    t.render().unwrap_or_else(|e| {
        format!("<!doctype html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><title>Errore</title></head><body><main><h1>Si è verificato un errore</h1><p>{}</p></main></body></html>\n", escape(&e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_template_writes_a_value_into_a_single_quoted_attribute() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(&dir).expect("templates") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            // Inside a tag, every `{{ value }}` must sit in a double-quoted attribute value.
            let (mut in_tag, mut in_quotes) = (false, false);
            let bytes = text.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    b'<' if !in_tag => in_tag = true,
                    b'>' if in_tag && !in_quotes => in_tag = false,
                    b'"' if in_tag => in_quotes = !in_quotes,
                    b'{' if in_tag && bytes.get(i + 1) == Some(&b'{') => assert!(
                        in_quotes,
                        "{}: a value outside double quotes at byte {i}",
                        path.display()
                    ),
                    _ => {}
                }
            }
        }
    }
}
