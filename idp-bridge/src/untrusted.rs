//! The one way XML from outside is parsed: SAML Responses at the ACS, logout messages at the SLO
//! endpoint and IdP metadata files all go through [`parse`], so they are refused for the same
//! reasons, decided by what the parser itself sees rather than by a substring search.
//!
//! What is refused, and why:
//! * anything over the caller's size limit, before the parser runs;
//! * text that libxml could read in another encoding than the UTF-8 we checked: a NUL byte (a
//!   UTF-16 or UCS-4 document without BOM is valid UTF-8 full of NULs, and hides `<!DOCTYPE`
//!   from a byte search) and an XML declaration naming another encoding;
//! * any DTD, internal or external, as a node of the parsed document (and so every entity
//!   declaration), and any entity reference left in the tree;
//! * documents that are not well-formed: recovery is off, so the parser never repairs a
//!   document into one that another parser (samael's, xmlsec's) would read differently;
//! * nesting deeper than [`MAX_DEPTH`] elements;
//! * `ds:Transform`s other than the enveloped-signature and canonicalisation ones SAML uses (no
//!   XSLT, no XPath filters, no base64 or XPointer tricks).
//!
//! Network access is off. The parsers that samael and xmlsec run afterwards read the very same
//! text, which this module has shown to be plain, well-formed UTF-8 XML without a DTD: they can
//! only build the same tree.

use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{Document, Node, NodeType};
use samael::crypto::AllowedSignatureAlgorithm;

/// The deepest element nesting accepted. SAML Responses nest about a dozen deep, metadata less.
pub const MAX_DEPTH: usize = 48;

const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The only `ds:Transform` algorithms accepted anywhere (SPID's and every SAML profile's).
pub(crate) const ALLOWED_TRANSFORMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];

/// The only signature algorithms accepted on signed XML (no SHA-1, no DSA): SPID's rules, for
/// responses, logout messages and federation metadata alike.
pub(crate) const ALLOWED_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Why a document from outside was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the size limit.
    TooLarge,
    /// A NUL byte or an XML declaration naming an encoding other than UTF-8.
    Encoding,
    /// Not well-formed XML.
    NotWellFormed,
    /// No root element.
    Empty,
    /// A DTD, an entity declaration or an entity reference.
    Dtd,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A signature transform that SAML does not use.
    Transform,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The reason, as a static text for typed errors.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::TooLarge => "the document is too large",
            Refused::Encoding => "the document is not plain UTF-8 text",
            Refused::NotWellFormed => "not well-formed XML",
            Refused::Empty => "the document is empty",
            Refused::Dtd => "a DTD or entity is refused",
            Refused::TooDeep => "the document is nested too deep",
            Refused::Transform => {
                "a signature transform other than enveloped-signature and canonicalisation"
            }
        }
    }

    /// Whether this is an attack pattern rather than plain garbage (for the status and the log).
    pub fn is_dangerous(self) -> bool {
        matches!(self, Refused::Dtd | Refused::Transform | Refused::Encoding)
    }
}

/// Whether the XML declaration, if any, names UTF-8 (or no encoding).
fn declares_utf8(xml: &str) -> bool {
    let text = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let Some(rest) = text.strip_prefix("<?xml") else {
        return true;
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        // `<?xml-stylesheet …?>` and the like: a processing instruction, not the declaration.
        return true;
    }
    let Some(end) = rest.find("?>") else {
        return false;
    };
    let decl = &rest[..end];
    let Some(at) = decl.find("encoding") else {
        return true;
    };
    let value = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')
        .map(str::trim_start)
        .and_then(|v| {
            let quote = v.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            v[1..].split(quote).next()
        });
    value.is_some_and(|v| v.eq_ignore_ascii_case("utf-8"))
}

/// Parses XML that came from outside, with every refusal of the module docs.
pub fn parse(xml: &str, max_bytes: usize) -> Result<Document, Refused> {
    if xml.len() > max_bytes {
        return Err(Refused::TooLarge);
    }
    if xml.as_bytes().contains(&0) || !declares_utf8(xml) {
        return Err(Refused::Encoding);
    }
    let options = ParserOptions {
        recover: false,
        no_net: true,
        // Not `no_def_dtd`: libxml's crate maps it to the HTML flag's value, which for XML is
        // XML_PARSE_DTDLOAD (load external DTDs).
        ..ParserOptions::default()
    };
    // The one call to libxml's parser (clippy.toml forbids it everywhere else).
    #[allow(clippy::disallowed_methods)]
    let doc = Parser::default()
        .parse_string_with_options(xml, options)
        .map_err(|_| Refused::NotWellFormed)?;
    let mut top = doc.as_node().get_first_child();
    while let Some(n) = top {
        if matches!(
            n.get_type(),
            Some(NodeType::DTDNode | NodeType::DocumentTypeNode | NodeType::EntityDecl)
        ) {
            return Err(Refused::Dtd);
        }
        top = n.get_next_sibling();
    }
    let root = doc.get_root_element().ok_or(Refused::Empty)?;
    check_tree(&root)?;
    Ok(doc)
}

/// Whether `n` is the element `name` in `namespace`.
pub(crate) fn is(n: &Node, name: &str, namespace: &str) -> bool {
    n.get_name() == name
        && n.get_namespace()
            .is_some_and(|ns| ns.get_href() == namespace)
}

/// The child elements `name` in `namespace`.
pub(crate) fn children(n: &Node, name: &str, namespace: &str) -> Vec<Node> {
    n.get_child_elements()
        .into_iter()
        .filter(|c| is(c, name, namespace))
        .collect()
}

/// The one child element `name` in `namespace`; `Err(count)` when there is none or several.
pub(crate) fn one_of(n: &Node, name: &str, namespace: &str) -> Result<Node, usize> {
    let mut v = children(n, name, namespace);
    if v.len() == 1 {
        Ok(v.remove(0))
    } else {
        Err(v.len())
    }
}

/// Whether `el` carries a `ds:Signature` child whose reference is `el` itself (`#` + its `ID`).
/// Together with a verification of every signature of the document, this says that `el` is the
/// signed element.
pub(crate) fn signs_itself(el: &Node) -> bool {
    let Some(id) = el.get_attribute("ID").filter(|i| !i.is_empty()) else {
        return false;
    };
    let own = format!("#{id}");
    children(el, "Signature", NS_DSIG).iter().any(|sig| {
        children(sig, "SignedInfo", NS_DSIG)
            .iter()
            .flat_map(|si| children(si, "Reference", NS_DSIG))
            .any(|r| r.get_attribute("URI").as_deref() == Some(own.as_str()))
    })
}

/// Depth, entity references and transforms, without recursion (a deep document must not be able
/// to exhaust the stack).
fn check_tree(root: &Node) -> Result<(), Refused> {
    let mut stack: Vec<(Node, usize)> = vec![(root.clone(), 1)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(Refused::TooDeep);
        }
        if node.get_name() == "Transform"
            && node
                .get_namespace()
                .is_none_or(|ns| ns.get_href() == NS_DSIG)
        {
            let alg = node.get_attribute("Algorithm").unwrap_or_default();
            if !ALLOWED_TRANSFORMS.contains(&alg.as_str()) {
                return Err(Refused::Transform);
            }
        }
        let mut child = node.get_first_child();
        while let Some(c) = child {
            match c.get_type() {
                Some(NodeType::ElementNode) => stack.push((c.clone(), depth + 1)),
                Some(NodeType::EntityRefNode | NodeType::EntityNode | NodeType::EntityDecl) => {
                    return Err(Refused::Dtd)
                }
                _ => {}
            }
            child = c.get_next_sibling();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> String {
        // The bytes of a BOM-less UTF-16LE document, which happen to be valid UTF-8.
        let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        String::from_utf8(bytes).expect("ASCII in UTF-16LE is valid UTF-8")
    }

    #[test]
    fn plain_xml_parses() {
        let doc = parse(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a><b/></a>",
            1024,
        )
        .expect("plain XML");
        assert_eq!(doc.get_root_element().expect("root").get_name(), "a");
        parse("\u{feff}<a/>", 1024).expect("a UTF-8 BOM");
        parse("<?xml version='1.0' encoding='utf-8'?><a/>", 1024).expect("single quotes");
    }

    #[test]
    fn a_dtd_is_refused_as_the_parser_sees_it() {
        for doc in [
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<!DOCTYPE a SYSTEM \"http://127.0.0.1:1/x.dtd\"><a/>",
            "<!DOCTYPE a><a/>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY % p SYSTEM \"file:///etc/passwd\">]><a/>",
        ] {
            assert_eq!(parse(doc, 1024).err(), Some(Refused::Dtd), "{doc}");
        }
    }

    #[test]
    fn a_bom_less_utf16_document_cannot_hide_its_dtd() {
        let doc = utf16le(
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
        );
        assert!(!doc.contains("<!DOCTYPE"), "the byte search is blind to it");
        assert_eq!(parse(&doc, 4096).err(), Some(Refused::Encoding));
    }

    #[test]
    fn another_declared_encoding_is_refused() {
        for doc in [
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            "<?xml version=\"1.0\" encoding=utf-8?><a/>",
            "<?xml version=\"1.0\" encoding=\"utf-8\"<a/>",
        ] {
            assert_eq!(parse(doc, 1024).err(), Some(Refused::Encoding), "{doc}");
        }
    }

    #[test]
    fn undeclared_entities_and_broken_documents_are_not_repaired() {
        for doc in [
            "<a>&x;</a>",
            "<a><b></a>",
            "<a/><b/>",
            "<a>",
            "",
            "   ",
            "<a x='1' x='2'/>",
        ] {
            assert!(parse(doc, 1024).is_err(), "{doc:?} must be refused");
        }
    }

    #[test]
    fn size_and_depth_are_bounded() {
        assert_eq!(parse("<a/>", 3).err(), Some(Refused::TooLarge));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(parse(&deep, 1 << 20).err(), Some(Refused::TooDeep));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        parse(&ok, 1 << 20).expect("at the limit");
        let very_deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(
            parse(&very_deep, 1 << 20).is_err(),
            "no stack overflow, no hang"
        );
    }

    #[test]
    fn only_samls_transforms_are_accepted() {
        let with = |alg: &str| {
            format!(
                "<a><ds:Transform xmlns:ds=\"{NS_DSIG}\" Algorithm=\"{alg}\"/><Transform Algorithm=\"{alg}\"/></a>"
            )
        };
        parse(&with(ALLOWED_TRANSFORMS[0]), 4096).expect("enveloped-signature");
        for alg in [
            "http://www.w3.org/TR/1999/REC-xslt-19991116",
            "http://www.w3.org/TR/1999/REC-xpath-19991116",
            "http://www.w3.org/2002/06/xmldsig-filter2",
            "http://www.w3.org/2000/09/xmldsig#base64",
            "",
        ] {
            assert_eq!(
                parse(&with(alg), 4096).err(),
                Some(Refused::Transform),
                "{alg}"
            );
        }
    }
}
