//! The citizen pages of the catalog: the home (search, browse by category and by comune) and the
//! results page (`/catalog?q=…&comune=…&category=…&level=…&page=…`), paginated, usable without
//! JavaScript. When the citizen is logged in, each service says whether it opens directly at the
//! current level or will ask for a stronger login.

use policies::{Access, Category, Level};

use crate::html::{render, Site};
use crate::model::{access_label, Catalog, CatalogService, Viewer};
use crate::query::{Query, QueryError};

/// Services per results page.
pub const PAGE_SIZE: usize = 20;

fn level_name(l: Level) -> &'static str {
    match l {
        Level::SpidL1 => "SPID livello 1",
        Level::SpidL2 => "SPID livello 2",
        Level::SpidL3 => "SPID livello 3 o CIE",
    }
}

/// One `<option>` of a filter.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The search form (`search.html`): the text box, and on the results page the three filters.
struct SearchForm {
    text: String,
    full: bool,
    comuni: Vec<Choice>,
    categories: Vec<Choice>,
    levels: Vec<Choice>,
}

fn search_form(catalog: &Catalog, query: &Query, full: bool) -> SearchForm {
    let mut form = SearchForm {
        text: query.text.clone(),
        full,
        comuni: Vec::new(),
        categories: Vec::new(),
        levels: Vec::new(),
    };
    if full {
        form.comuni = catalog
            .comuni
            .iter()
            .map(|c| Choice {
                value: c.ipa_code.clone(),
                label: c.name.trim_start_matches("Comune di ").to_string(),
                selected: query.comune.as_deref() == Some(c.ipa_code.as_str()),
            })
            .collect();
        form.categories = Category::ALL
            .iter()
            .map(|c| Choice {
                value: c.slug().into(),
                label: c.label().into(),
                selected: query.category == Some(*c),
            })
            .collect();
        form.levels = [
            ("public", "Accesso libero", Access::Public),
            ("SpidL1", "SPID livello 1", Access::Login(Level::SpidL1)),
            ("SpidL2", "SPID livello 2", Access::Login(Level::SpidL2)),
            ("SpidL3", "SPID livello 3", Access::Login(Level::SpidL3)),
        ]
        .into_iter()
        .map(|(value, label, access)| Choice {
            value: value.into(),
            label: label.into(),
            selected: query.access == Some(access),
        })
        .collect();
    }
    form
}

struct CategoryLink {
    slug: &'static str,
    label: &'static str,
    count: usize,
}

struct ComuneLink {
    ipa: String,
    name: String,
    count: usize,
}

struct Province {
    heading: Option<String>,
    comuni: Vec<ComuneLink>,
}

#[derive(askama::Template)]
#[template(path = "home.html")]
struct HomeTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    viewer: Option<&'static str>,
    services: usize,
    comuni: usize,
    form: SearchForm,
    categories: Vec<CategoryLink>,
    provinces: Vec<Province>,
}

/// The portal's home: search, the 15 categories and every comune (by province), with counts.
pub fn home(site: &Site, catalog: &Catalog, viewer: Option<Viewer>) -> String {
    let categories = Category::ALL
        .iter()
        .map(|c| CategoryLink {
            slug: c.slug(),
            label: c.label(),
            count: catalog.services.iter().filter(|s| s.category == *c).count(),
        })
        .filter(|c| c.count > 0)
        .collect();
    let mut names: Vec<Option<&str>> = catalog
        .comuni
        .iter()
        .map(|c| c.province.as_deref())
        .collect();
    names.sort();
    names.dedup();
    let some_province = catalog.comuni.iter().any(|c| c.province.is_some());
    let provinces = names
        .into_iter()
        .map(|p| Province {
            heading: match p {
                Some(name) => Some(format!("Provincia di {name}")),
                None if some_province => Some("Altri comuni".into()),
                None => None,
            },
            comuni: catalog
                .comuni
                .iter()
                .filter(|c| c.province.as_deref() == p && c.services > 0)
                .map(|c| ComuneLink {
                    ipa: c.ipa_code.clone(),
                    name: c.name.trim_start_matches("Comune di ").to_string(),
                    count: c.services,
                })
                .collect(),
        })
        .collect();
    render(&HomeTemplate {
        site,
        title: "Servizi on-line dei Comuni",
        viewer: viewer.map(|v| level_name(v.held.level)),
        services: catalog.services.len(),
        comuni: catalog.comuni.len(),
        form: search_form(catalog, &Query::default(), false),
        categories,
        provinces,
    })
}

/// One result, as `results.html` shows it.
struct Item<'a> {
    url: &'a str,
    name: &'a str,
    description: &'a str,
    comune: &'a str,
    category: &'static str,
    badge_class: &'static str,
    access: String,
    /// (class, text) of what this service means for the logged-in viewer.
    viewer_note: Option<(&'static str, String)>,
    help_url: Option<&'a str>,
}

fn item<'a>(catalog: &'a Catalog, s: &'a CatalogService, viewer: Option<Viewer>) -> Item<'a> {
    let viewer_note = match (viewer, s.access) {
        // Aggregator mode: each comune is an SP of its own, the login is made for it.
        (Some(v), Access::Login(_)) if !Catalog::serves(v, s) => Some((
            "badge step",
            format!(
                "Ti chiederà un accesso separato per {}",
                catalog.comuni[s.comune].name
            ),
        )),
        (Some(Viewer { held, .. }), Access::Login(need)) => {
            Some(if Catalog::opens_directly(s, held) {
                ("badge ok", "Si apre subito".to_string())
            } else if held.level >= need {
                (
                    "badge step",
                    "Ti chiederà di accedere di nuovo per altri dati".to_string(),
                )
            } else {
                (
                    "badge step",
                    format!("Ti chiederà l'accesso con {}", level_name(need)),
                )
            })
        }
        _ => None,
    };
    Item {
        url: &s.url,
        name: &s.name,
        description: &s.description,
        comune: &catalog.comuni[s.comune].name,
        category: s.category.label(),
        badge_class: if s.access == Access::Public {
            "badge public"
        } else {
            "badge bg-primary"
        },
        access: access_label(s.access, s.cie),
        viewer_note,
        help_url: s.help_url.as_deref(),
    }
}

fn page_link(query: &Query, page: usize) -> String {
    let mut q = query.clone();
    q.page = Some(page);
    q.per_page = None;
    format!("/catalog?{}", q.canonical())
}

#[derive(askama::Template)]
#[template(path = "results.html")]
struct ResultsTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    viewer: Option<&'static str>,
    errors: Vec<&'a str>,
    unknown_comune: bool,
    form: SearchForm,
    found: String,
    items: Vec<Item<'a>>,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

/// The results page for `query` (`errors`: parameters that were ignored).
pub fn results(
    site: &Site,
    catalog: &Catalog,
    query: &Query,
    errors: &[QueryError],
    viewer: Option<Viewer>,
) -> String {
    let selected: Vec<&CatalogService> = catalog.select(query).collect();
    let comune = query
        .comune
        .as_deref()
        .and_then(|ipa| catalog.comune(ipa))
        .map(|i| &catalog.comuni[i]);
    let title = match (comune, query.category) {
        (Some(c), _) => format!("Servizi: {}", c.name),
        (None, Some(cat)) => format!("Servizi: {}", cat.label()),
        (None, None) if !query.terms.is_empty() => "Risultati della ricerca".into(),
        _ => "Tutti i servizi".into(),
    };
    let (page, per_page, slice) = query.page_of(&selected, PAGE_SIZE);
    let pages = selected.len().div_ceil(per_page).max(1);
    let found = match selected.len() {
        0 => "Nessun servizio trovato.".to_string(),
        1 => "1 servizio trovato.".to_string(),
        n => format!("{n} servizi trovati, pagina {page} di {pages}."),
    };
    render(&ResultsTemplate {
        site,
        title: &title,
        viewer: viewer.map(|v| level_name(v.held.level)),
        errors: errors.iter().map(|e| e.param.as_str()).collect(),
        unknown_comune: query.comune.is_some() && comune.is_none(),
        form: search_form(catalog, query, true),
        found,
        items: slice.iter().map(|s| item(catalog, s, viewer)).collect(),
        page,
        pages,
        prev: (page > 1).then(|| page_link(query, page - 1)),
        next: (page < pages).then(|| page_link(query, page + 1)),
    })
}
