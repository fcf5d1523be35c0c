//! The citizen pages of the catalog: the home (search, browse by category and by comune) and the
//! results page (`/catalog?q=…&comune=…&category=…&level=…&page=…`), paginated, usable without
//! JavaScript. When the citizen is logged in, each service says whether it opens directly at the
//! current level or will ask for a stronger login.

use std::fmt::Write as _;

use policies::{Access, Category, Held, Level};

use crate::html::{escape, shell};
use crate::model::{access_label, Catalog, CatalogService};
use crate::query::{Query, QueryError};

/// Services per results page.
pub const PAGE_SIZE: usize = 20;

fn viewer_banner(body: &mut String, viewer: Option<Held>) {
    if let Some(Held { level, .. }) = viewer {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">Hai effettuato l'accesso con <strong>{}</strong>. \
I servizi segnati «Si apre subito» non ti chiederanno di nuovo le credenziali. \
<a href=\"/.sso/logout\">Esci</a></p>",
            level_name(level)
        );
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::SpidL1 => "SPID livello 1",
        Level::SpidL2 => "SPID livello 2",
        Level::SpidL3 => "SPID livello 3 o CIE",
    }
}

fn search_form(body: &mut String, catalog: &Catalog, query: &Query, full: bool) {
    let _ = write!(
        body,
        "<form class=\"search\" role=\"search\" action=\"/catalog\" method=\"get\">\
<div class=\"field\"><label for=\"q\">Cerca un servizio</label>\
<input id=\"q\" name=\"q\" type=\"search\" maxlength=\"200\" value=\"{}\" placeholder=\"es. mensa, rifiuti, certificato\"></div>",
        escape(&query.text)
    );
    if full {
        body.push_str("<div class=\"field\"><label for=\"comune\">Comune</label><select id=\"comune\" name=\"comune\"><option value=\"\">Tutti i comuni</option>");
        for c in &catalog.comuni {
            let selected = if query.comune.as_deref() == Some(c.ipa_code.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                body,
                "<option value=\"{}\"{selected}>{}</option>",
                escape(&c.ipa_code),
                escape(c.name.trim_start_matches("Comune di "))
            );
        }
        body.push_str("</select></div><div class=\"field\"><label for=\"category\">Argomento</label><select id=\"category\" name=\"category\"><option value=\"\">Tutti gli argomenti</option>");
        for c in Category::ALL {
            let selected = if query.category == Some(*c) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                body,
                "<option value=\"{}\"{selected}>{}</option>",
                c.slug(),
                c.label()
            );
        }
        body.push_str("</select></div><div class=\"field\"><label for=\"level\">Accesso</label><select id=\"level\" name=\"level\"><option value=\"\">Qualsiasi accesso</option>");
        for (value, label, access) in [
            ("public", "Accesso libero", Access::Public),
            ("SpidL1", "SPID livello 1", Access::Login(Level::SpidL1)),
            ("SpidL2", "SPID livello 2", Access::Login(Level::SpidL2)),
            ("SpidL3", "SPID livello 3", Access::Login(Level::SpidL3)),
        ] {
            let selected = if query.access == Some(access) {
                " selected"
            } else {
                ""
            };
            let _ = write!(body, "<option value=\"{value}\"{selected}>{label}</option>");
        }
        body.push_str("</select></div>");
    }
    body.push_str("<button type=\"submit\">Cerca</button></form>");
}

/// The portal's home: search, the 15 categories and every comune (by province), with counts.
pub fn home(catalog: &Catalog, viewer: Option<Held>) -> String {
    let mut body = String::from("<h1>Servizi on-line dei Comuni</h1>");
    viewer_banner(&mut body, viewer);
    let _ = write!(
        body,
        "<p>{} servizi on-line di {} comuni, con un solo accesso SPID o CIE.</p>",
        catalog.services.len(),
        catalog.comuni.len()
    );
    search_form(&mut body, catalog, &Query::default(), false);
    if catalog.services.is_empty() {
        body.push_str("<p>Nessun servizio è ancora pubblicato.</p>");
        return shell("Servizi on-line dei Comuni", &body);
    }
    body.push_str("<section aria-labelledby=\"per-argomento\"><h2 id=\"per-argomento\">Per argomento</h2><ul class=\"grid\">");
    for c in Category::ALL {
        let n = catalog.services.iter().filter(|s| s.category == *c).count();
        if n == 0 {
            continue;
        }
        let _ = write!(
            body,
            "<li><a href=\"/catalog?category={}\">{}</a> <span class=\"count\">{n} {}</span></li>",
            c.slug(),
            c.label(),
            if n == 1 { "servizio" } else { "servizi" }
        );
    }
    body.push_str("</ul></section><section aria-labelledby=\"per-comune\"><h2 id=\"per-comune\">Per comune</h2>");
    let mut provinces: Vec<Option<&str>> = catalog
        .comuni
        .iter()
        .map(|c| c.province.as_deref())
        .collect();
    provinces.sort();
    provinces.dedup();
    for p in provinces {
        if let Some(name) = p {
            let _ = write!(body, "<h3>Provincia di {}</h3>", escape(name));
        } else if catalog.comuni.iter().any(|c| c.province.is_some()) {
            body.push_str("<h3>Altri comuni</h3>");
        }
        body.push_str("<ul class=\"columns\">");
        for c in catalog
            .comuni
            .iter()
            .filter(|c| c.province.as_deref() == p && c.services > 0)
        {
            let _ = write!(
                body,
                "<li><a href=\"/catalog?comune={}\">{}</a> <span class=\"count\">{}</span></li>",
                escape(&c.ipa_code),
                escape(c.name.trim_start_matches("Comune di ")),
                c.services
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");
    shell("Servizi on-line dei Comuni", &body)
}

fn service_item(body: &mut String, catalog: &Catalog, s: &CatalogService, viewer: Option<Held>) {
    let comune = &catalog.comuni[s.comune];
    let badge_class = if s.access == Access::Public {
        "badge public"
    } else {
        "badge"
    };
    let _ = write!(
        body,
        "<li><h2><a href=\"{url}\">{name}</a></h2><p>{desc}</p>\
<p class=\"meta\">{comune} · {category}</p><p><span class=\"{badge_class}\">{access}</span>",
        url = escape(&s.url),
        name = escape(&s.name),
        desc = escape(&s.description),
        comune = escape(&comune.name),
        category = s.category.label(),
        access = access_label(s.access, s.cie),
    );
    if let (Some(held), Access::Login(need)) = (viewer, s.access) {
        if Catalog::opens_directly(s, held) {
            body.push_str(" <span class=\"badge ok\">Si apre subito</span>");
        } else if held.level >= need {
            body.push_str(
                " <span class=\"badge step\">Ti chiederà di accedere di nuovo per altri dati</span>",
            );
        } else {
            let _ = write!(
                body,
                " <span class=\"badge step\">Ti chiederà l'accesso con {}</span>",
                level_name(need)
            );
        }
    }
    body.push_str("</p>");
    if let Some(h) = &s.help_url {
        let _ = write!(
            body,
            "<p><a href=\"{}\">Assistenza per questo servizio<span class=\"sr\"> ({})</span></a></p>",
            escape(h),
            escape(&s.name)
        );
    }
    body.push_str("</li>");
}

fn page_link(query: &Query, page: usize) -> String {
    let mut q = query.clone();
    q.page = Some(page);
    q.per_page = None;
    format!("/catalog?{}", escape(&q.canonical()))
}

/// The results page for `query` (`errors`: parameters that were ignored).
pub fn results(
    catalog: &Catalog,
    query: &Query,
    errors: &[QueryError],
    viewer: Option<Held>,
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
    let mut body = format!("<h1>{}</h1>", escape(&title));
    viewer_banner(&mut body, viewer);
    for e in errors {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"alert\">Un filtro non è valido ed è stato ignorato ({}).</p>",
            escape(&e.param)
        );
    }
    if query.comune.is_some() && comune.is_none() {
        body.push_str("<p class=\"notice\" role=\"alert\">Nessun comune ha questo codice.</p>");
    }
    search_form(&mut body, catalog, query, true);
    let (page, per_page, slice) = query.page_of(&selected, PAGE_SIZE);
    let pages = selected.len().div_ceil(per_page).max(1);
    let found = match selected.len() {
        0 => "Nessun servizio trovato.".to_string(),
        1 => "1 servizio trovato.".to_string(),
        n => format!("{n} servizi trovati, pagina {page} di {pages}."),
    };
    let _ = write!(body, "<p role=\"status\">{found}</p>");
    if !slice.is_empty() {
        body.push_str("<ol class=\"results\">");
        for s in slice {
            service_item(&mut body, catalog, s, viewer);
        }
        body.push_str("</ol>");
    }
    if pages > 1 {
        body.push_str("<nav class=\"pages\" aria-label=\"Pagine dei risultati\"><ul>");
        if page > 1 {
            let _ = write!(
                body,
                "<li><a href=\"{}\" rel=\"prev\">Pagina precedente</a></li>",
                page_link(query, page - 1)
            );
        }
        let _ = write!(
            body,
            "<li aria-current=\"page\">Pagina {page} di {pages}</li>"
        );
        if page < pages {
            let _ = write!(
                body,
                "<li><a href=\"{}\" rel=\"next\">Pagina successiva</a></li>",
                page_link(query, page + 1)
            );
        }
        body.push_str("</ul></nav>");
    }
    body.push_str("<p><a href=\"/\">Torna alla pagina iniziale</a> · <a href=\"/catalog.json\">Dati in JSON</a> · <a href=\"/catalog.jsonld\">JSON-LD (schema.org)</a></p>");
    shell(&title, &body)
}
