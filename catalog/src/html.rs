//! HTML escaping and the page shell shared by every page.

use std::fmt::Write;

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

/// The stylesheet, inline so that error pages need no second request. Colours follow the
/// Designers Italia palette (primary blue #0066CC on white: contrast 5.6:1).
const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font-family:'Titillium Web',Geneva,Tahoma,sans-serif;color:#1a1a1a;background:#fff;line-height:1.5}\
a{color:#0066cc}a:focus,button:focus,summary:focus{outline:3px solid #f90;outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}\
header{background:#0066cc;color:#fff;padding:1rem}header a{color:#fff;text-decoration:none;font-weight:700;font-size:1.25rem}\
main{max-width:60rem;margin:0 auto;padding:1rem}\
h1{font-size:1.75rem;margin:.5rem 0 1rem}h2{font-size:1.35rem;margin:1.5rem 0 .5rem}\
.code{color:#5c6f82;font-size:.9rem}\
ul.services{list-style:none;padding:0}ul.services li{border-bottom:1px solid #d9dadb;padding:.75rem 0}\
.badge{display:inline-block;font-size:.85rem;padding:0 .5rem;border-radius:4px;background:#e6f0fa;color:#004d99;margin:0 .5rem .25rem 0}\
.badge.public{background:#e8f5ec;color:#00663d}\
.access{display:flex;flex-direction:column;gap:1rem;margin:1.5rem 0}\
.btn-access{display:flex;align-items:center;gap:.75rem;width:100%;min-height:48px;padding:.75rem 1rem;border-radius:4px;background:#0066cc;color:#fff;font-weight:700;font-size:1.1rem;text-decoration:none;cursor:pointer;list-style:none}\
.btn-access::-webkit-details-marker{display:none}.btn-access:hover{background:#004d99}\
.idp-list{list-style:none;margin:.25rem 0 0;padding:0;border:1px solid #d9dadb;border-radius:4px}\
.idp-list li+li{border-top:1px solid #d9dadb}\
.idp-list a{display:flex;align-items:center;gap:.75rem;min-height:48px;padding:.5rem 1rem;font-weight:600;text-decoration:none}\
.idp-list a:hover{background:#e6f0fa}.idp-list img{max-width:7rem;height:28px;object-fit:contain}\
.idp-help{display:flex;flex-wrap:wrap;gap:1rem;font-size:.9rem}\
@media (min-width:36em){.access-group{max-width:22rem}}\
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}\
form.search{display:flex;flex-wrap:wrap;gap:.75rem;align-items:flex-end;margin:1rem 0;padding:1rem;background:#f2f7fc;border-radius:4px}\
.field{display:flex;flex-direction:column;flex:1 1 14rem}.field label{font-weight:600;margin-bottom:.25rem}\
input,select{font:inherit;min-height:44px;padding:.4rem .6rem;border:1px solid #5c6f82;border-radius:4px;background:#fff;color:#1a1a1a}\
input:focus,select:focus{outline:3px solid #f90;outline-offset:1px}\
form.search button{font:inherit;font-weight:700;min-height:44px;padding:.4rem 1.25rem;border:0;border-radius:4px;background:#0066cc;color:#fff;cursor:pointer}\
form.search button:hover{background:#004d99}\
ul.grid,ul.columns{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.25rem 1.5rem}\
ul.grid li,ul.columns li{padding:.35rem 0}.count{color:#5c6f82;font-size:.9rem}\
ol.results{list-style:none;padding:0}ol.results li{border-bottom:1px solid #d9dadb;padding:.75rem 0}\
ol.results h2{font-size:1.2rem;margin:0 0 .25rem}.meta{color:#5c6f82;margin:.25rem 0}ol.results p{margin:.25rem 0}\
.badge.ok{background:#e8f5ec;color:#00663d}.badge.step{background:#fff4e5;color:#7a4100}\
.notice{background:#f2f7fc;border-left:4px solid #0066cc;padding:.5rem 1rem}\
nav.pages ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}\
footer{border-top:1px solid #d9dadb;margin-top:2rem;padding:1rem;color:#5c6f82;font-size:.9rem;text-align:center}";

/// Wraps `body` in the common page: landmarks, skip link, `lang="it"`.
pub(crate) fn shell(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 512);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"it\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} - Varco</title><style>{STYLE}</style></head><body>\
<a class=\"skip\" href=\"#contenuto\">Vai al contenuto</a>\
<header><a href=\"/\">Varco · servizi on-line dei Comuni</a></header>\
<main id=\"contenuto\">{body}</main>\
<footer>Accesso unico ai servizi comunali con SPID e CIE</footer></body></html>\n",
        title = escape(title),
    );
    out
}
