//! Catalog query strings (`/catalog`, `/catalog.json`, `/catalog.jsonld`): parsed once, bounded,
//! and turned into a canonical form (the cache key of a filtered answer).
//!
//! Parameters: `comune` (IPA code), `category` (official slug), `level` (`public`, `SpidL1`,
//! `SpidL2`, `SpidL3`), `q` (words, all of which must appear; case and accents ignored), `page`
//! (from 1) and `per_page` (1-500). Empty values mean "any" (an HTML form's "Tutti").

use policies::{Access, Category, Level};

use crate::fold::fold;

/// Longest query string read.
pub const MAX_QUERY: usize = 2048;
/// Longest `q`, in characters.
pub const MAX_TEXT: usize = 200;
/// Most search words.
pub const MAX_TERMS: usize = 8;
/// Largest `per_page`.
pub const MAX_PER_PAGE: usize = 500;
/// Highest page number accepted.
pub const MAX_PAGE: usize = 100_000;

/// A parsed catalog query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// IPA code of one comune.
    pub comune: Option<String>,
    /// One category.
    pub category: Option<Category>,
    /// One access level.
    pub access: Option<Access>,
    /// The text as typed (for the search box).
    pub text: String,
    /// Folded search words, each padded on the left so that words match from their start.
    pub terms: Vec<String>,
    /// Page asked for, from 1.
    pub page: Option<usize>,
    /// Page size asked for.
    pub per_page: Option<usize>,
}

/// A parameter that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct QueryError {
    /// The parameter.
    pub param: String,
    /// What is wrong, in English for the JSON API.
    pub message: String,
}

fn problem(param: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        param: param.chars().take(32).collect(),
        message: message.into(),
    }
}

impl Query {
    /// Parses a raw query string. `strict` (the JSON APIs) refuses unknown parameters; the HTML
    /// page ignores them (links from elsewhere carry tracking parameters). Every problem is
    /// reported; the query keeps what was valid.
    pub fn parse(raw: &str, strict: bool) -> (Query, Vec<QueryError>) {
        let mut q = Query::default();
        let mut errors = Vec::new();
        if raw.len() > MAX_QUERY {
            errors.push(problem("query", format!("longer than {MAX_QUERY} bytes")));
            return (q, errors);
        }
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()).take(32) {
            let value = value.trim();
            if seen.iter().any(|k| *k == key) {
                errors.push(problem(&key, "given more than once"));
                continue;
            }
            seen.push(key.to_string());
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "comune" => {
                    let ok = value.len() <= 16
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if ok {
                        q.comune = Some(value.to_string());
                    } else {
                        errors.push(problem("comune", "must be an IPA code like c_b648"));
                    }
                }
                "category" => match Category::from_slug(value) {
                    Some(c) => q.category = Some(c),
                    None => errors.push(problem(
                        "category",
                        "not one of the 15 official category slugs",
                    )),
                },
                "level" => match value {
                    "public" => q.access = Some(Access::Public),
                    v => match v.parse::<Level>() {
                        Ok(l) => q.access = Some(Access::Login(l)),
                        Err(()) => errors
                            .push(problem("level", "must be public, SpidL1, SpidL2 or SpidL3")),
                    },
                },
                "q" => {
                    if value.chars().count() > MAX_TEXT {
                        errors.push(problem("q", format!("longer than {MAX_TEXT} characters")));
                        continue;
                    }
                    q.text = value.to_string();
                    let folded = fold(value);
                    q.terms = folded
                        .split_whitespace()
                        .take(MAX_TERMS)
                        .map(|t| format!(" {t}"))
                        .collect();
                    q.terms.sort();
                    q.terms.dedup();
                    // Folding can lengthen text (`İ` is two characters in lower case): keep the
                    // canonical form within the limit, so that links built from it parse again.
                    while q.terms.iter().map(|t| t.chars().count()).sum::<usize>() > MAX_TEXT {
                        q.terms.pop();
                    }
                }
                "page" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE).contains(&n) => q.page = Some(n),
                    _ => errors.push(problem(
                        "page",
                        format!("must be a number from 1 to {MAX_PAGE}"),
                    )),
                },
                "per_page" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => q.per_page = Some(n),
                    _ => errors.push(problem(
                        "per_page",
                        format!("must be a number from 1 to {MAX_PER_PAGE}"),
                    )),
                },
                other if strict => errors.push(problem(
                    other,
                    "unknown parameter (known: comune, category, level, q, page, per_page)",
                )),
                _ => {}
            }
        }
        (q, errors)
    }

    /// Whether nothing narrows the catalog (the precomputed whole document answers).
    pub fn is_unfiltered(&self) -> bool {
        self.comune.is_none()
            && self.category.is_none()
            && self.access.is_none()
            && self.terms.is_empty()
            && self.page.is_none()
            && self.per_page.is_none()
    }

    /// The canonical query string (sorted, normalised): equal queries, equal keys.
    pub fn canonical(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(c) = self.category {
            s.append_pair("category", c.slug());
        }
        if let Some(c) = &self.comune {
            s.append_pair("comune", c);
        }
        if let Some(a) = self.access {
            s.append_pair("level", a.as_str());
        }
        if let Some(p) = self.page {
            s.append_pair("page", &p.to_string());
        }
        if let Some(p) = self.per_page {
            s.append_pair("per_page", &p.to_string());
        }
        if !self.terms.is_empty() {
            let words: Vec<&str> = self.terms.iter().map(|t| t.trim()).collect();
            s.append_pair("q", &words.join(" "));
        }
        s.finish()
    }

    /// `(page, per_page, slice)`: the whole unfiltered catalog is one document; a filtered answer
    /// comes in pages (100 by default), so no query can make the API render (and cache) the whole
    /// catalog again under another key.
    pub fn paginate<'s, T>(&self, all: &'s [T]) -> (usize, usize, &'s [T]) {
        if self.is_unfiltered() {
            return (1, all.len(), all);
        }
        self.page_of(all, 100)
    }

    /// `(page, per_page, slice)` with `default` items per page.
    pub fn page_of<'s, T>(&self, all: &'s [T], default: usize) -> (usize, usize, &'s [T]) {
        let per_page = self.per_page.unwrap_or(default).max(1);
        let page = self.page.unwrap_or(1);
        let start = (page - 1).saturating_mul(per_page).min(all.len());
        let end = start.saturating_add(per_page).min(all.len());
        (page, per_page, &all[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_is_read() {
        let (q, e) = Query::parse(
            "comune=c_b648&category=tributi-finanze-e-contravvenzioni&level=SpidL2&q=Rifiùti+TARI&page=2&per_page=10",
            true,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(q.comune.as_deref(), Some("c_b648"));
        assert_eq!(
            q.category.map(|c| c.slug()),
            Some("tributi-finanze-e-contravvenzioni")
        );
        assert_eq!(q.access, Some(Access::Login(Level::SpidL2)));
        assert_eq!(q.terms, vec![" rifiuti".to_string(), " tari".to_string()]);
        assert_eq!((q.page, q.per_page), (Some(2), Some(10)));
        assert_eq!(
            Query::parse("level=public", true).0.access,
            Some(Access::Public)
        );
    }

    #[test]
    fn empty_values_mean_any_and_unknown_parameters_are_strict_only() {
        let (q, e) = Query::parse("comune=&category=&q=+++&utm_source=x", false);
        assert!(e.is_empty() && q.is_unfiltered(), "{q:?} {e:?}");
        let (_, e) = Query::parse("utm_source=x", true);
        assert_eq!(e.len(), 1);
        assert!(e[0]
            .to_string()
            .starts_with("utm_source: unknown parameter"));
    }

    #[test]
    fn hostile_query_strings_are_bounded_and_reported() {
        let cases = [
            "comune=../../etc/passwd",
            "comune=C_B648",
            "comune=%00",
            "category=<script>",
            "level=SpidL9",
            "level=spidl2",
            "page=0",
            "page=-1",
            "page=99999999999999999999999",
            "per_page=100000",
            "per_page=abc",
            "q=%FF%FE",
            "comune=c_a&comune=c_b",
        ];
        for raw in cases {
            let (_, e) = Query::parse(raw, true);
            let (_, lenient) = Query::parse(raw, false);
            if raw == "q=%FF%FE" {
                // Invalid UTF-8 decodes to replacement characters: a harmless search.
                assert!(e.is_empty(), "{raw}: {e:?}");
                continue;
            }
            assert_eq!(e.len(), 1, "{raw}: {e:?}");
            assert_eq!(
                e, lenient,
                "{raw}: invalid values are reported on the HTML page too"
            );
        }
        let long = format!("q={}", "a".repeat(MAX_QUERY));
        assert_eq!(Query::parse(&long, true).1[0].param, "query");
        let long_text = format!("q={}", "parola ".repeat(40));
        assert_eq!(Query::parse(&long_text, true).1[0].param, "q");
        let many = format!("q={}", "a b c d e f g h i j k l".replace(' ', "+"));
        assert_eq!(Query::parse(&many, true).0.terms.len(), MAX_TERMS);
        let flood = "x=1&".repeat(500);
        assert!(
            Query::parse(&flood, true).1.len() <= 32,
            "at most 32 parameters are read"
        );
    }

    #[test]
    fn the_canonical_form_parses_back_to_itself() {
        for raw in [
            "q=%C4%B0%C4%B0",
            &format!("q={}", "%C4%B0".repeat(150)),
            "q=Caf%C3%A9+CAF%C3%89",
        ] {
            let (q, e) = Query::parse(raw, true);
            assert!(e.is_empty(), "{raw}: {e:?}");
            let (again, e) = Query::parse(&q.canonical(), true);
            assert!(e.is_empty(), "{raw}: {e:?}");
            assert_eq!(again.canonical(), q.canonical());
        }
    }

    #[test]
    fn canonical_forms_are_equal_for_equal_queries() {
        let a = Query::parse("q=TARI+rifiuti&comune=c_b648", true).0;
        let b = Query::parse("comune=c_b648&q=rifiuti++tari", true).0;
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.canonical(), "comune=c_b648&q=rifiuti+tari");
    }

    #[test]
    fn pages_are_clamped() {
        let items: Vec<u32> = (0..250).collect();
        let all = Query::default();
        assert_eq!(all.paginate(&items).2.len(), 250);
        let filtered = Query::parse("q=mensa", true).0;
        assert_eq!(filtered.paginate(&items), (1, 100, &items[..100]));
        let p3 = Query::parse("page=3", true).0;
        assert_eq!(p3.paginate(&items), (3, 100, &items[200..]));
        let far = Query::parse("page=99&per_page=500", true).0;
        assert!(far.paginate(&items).2.is_empty());
        assert_eq!(p3.page_of(&items, 20).2, &items[40..60]);
    }
}
