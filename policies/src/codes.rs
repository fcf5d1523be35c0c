//! The identifiers policy files name comuni and hosts by: IPA and ISTAT codes, DNS labels.

pub(crate) fn check_ipa_code(s: &str) -> Result<(), String> {
    let ok = (2..=16).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("must be an IPA code like \"c_b648\" (2-16 lower-case letters, digits or `_`, starting with a letter), found \"{s}\""))
    }
}

pub(crate) fn check_istat_code(s: &str) -> Result<(), String> {
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "must be a 6-digit ISTAT code like \"046007\", found \"{s}\""
        ))
    }
}

pub(crate) fn is_dns_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}
