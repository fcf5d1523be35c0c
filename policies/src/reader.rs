//! A checked walk over a parsed TOML table that records every problem instead of stopping at the
//! first, and rejects the keys nobody asked for.
//!
//! serde's `deny_unknown_fields` stops at the first error; ops fixing a policy file want them all,
//! each with its line and column, so the loaders read [`DeTable`]s (which keep spans) by hand.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostic, SourceFile};

/// Where diagnostics of one file are collected.
#[derive(Debug)]
pub(crate) struct Sink<'f> {
    pub(crate) file: &'f SourceFile,
    pub(crate) diags: &'f mut Vec<Diagnostic>,
}

impl Sink<'_> {
    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.diags.push(self.file.diag(span, message));
    }
}

/// A value with the byte span it came from.
#[derive(Debug, Clone)]
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

/// One table being read; `finish` reports the keys that were never asked for.
#[derive(Debug)]
pub(crate) struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    /// Span of the table (its header, or the inline table), for "missing field" messages.
    span: Range<usize>,
    /// Human name of the table, e.g. `[server]` or `[[service]]`.
    name: String,
    asked: Vec<&'static str>,
}

impl<'t, 'i> TableReader<'t, 'i> {
    pub(crate) fn new(table: &'t DeTable<'i>, span: Range<usize>, name: impl Into<String>) -> Self {
        Self {
            table,
            span,
            name: name.into(),
            asked: Vec::new(),
        }
    }

    pub(crate) fn span(&self) -> &Range<usize> {
        &self.span
    }

    fn raw(&mut self, key: &'static str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.asked.push(key);
        self.table.get(key)
    }

    fn missing(&self, sink: &mut Sink<'_>, key: &str, what: &str) {
        sink.error(
            &self.span,
            format!("{}: missing required field `{key}` ({what})", self.name),
        );
    }

    fn wrong_type(&self, sink: &mut Sink<'_>, key: &str, v: &Spanned<DeValue<'_>>, what: &str) {
        sink.error(
            &v.span(),
            format!(
                "{}: `{key}` must be {what}, found {}",
                self.name,
                type_name(v.get_ref())
            ),
        );
    }

    /// An optional string.
    pub(crate) fn opt_str(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<At<String>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: v.span(),
            }),
            _ => {
                self.wrong_type(sink, key, v, "a string");
                None
            }
        }
    }

    /// A required string; a missing key is reported against the table.
    pub(crate) fn str(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
        what: &str,
    ) -> Option<At<String>> {
        if self.table.contains_key(key) {
            self.opt_str(sink, key)
        } else {
            self.asked.push(key);
            self.missing(sink, key, what);
            None
        }
    }

    pub(crate) fn opt_bool(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<At<bool>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(At {
                value: *b,
                span: v.span(),
            }),
            _ => {
                self.wrong_type(sink, key, v, "true or false");
                None
            }
        }
    }

    pub(crate) fn opt_int(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<At<i64>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                match i64::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Some(At {
                        value: n,
                        span: v.span(),
                    }),
                    Err(_) => {
                        sink.error(&v.span(), format!("{}: `{key}` is out of range", self.name));
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(sink, key, v, "an integer");
                None
            }
        }
    }

    /// An optional table, read by a nested reader.
    pub(crate) fn opt_table(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
        name: &str,
    ) -> Option<TableReader<'t, 'i>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(t, v.span(), name)),
            _ => {
                self.wrong_type(sink, key, v, "a table");
                None
            }
        }
    }

    pub(crate) fn table(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
        name: &str,
    ) -> Option<TableReader<'t, 'i>> {
        if self.table.contains_key(key) {
            self.opt_table(sink, key, name)
        } else {
            self.asked.push(key);
            self.missing(sink, key, "a table");
            None
        }
    }

    /// An optional array of tables (`[[name]]`), each with its own reader.
    pub(crate) fn tables(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
        name: &str,
    ) -> Vec<TableReader<'t, 'i>> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(t) => Some(TableReader::new(t, item.span(), name)),
                    _ => {
                        sink.error(
                            &item.span(),
                            format!("`{key}` entries must be tables ({name})"),
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                self.wrong_type(sink, key, v, "an array of tables");
                Vec::new()
            }
        }
    }

    /// An optional array of strings.
    pub(crate) fn opt_str_array(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
    ) -> Option<At<Vec<At<String>>>> {
        let v = self.raw(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(sink, key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At {
                    value: s.to_string(),
                    span: item.span(),
                }),
                other => sink.error(
                    &item.span(),
                    format!(
                        "{}: `{key}` must contain only strings, found {}",
                        self.name,
                        type_name(other)
                    ),
                ),
            }
        }
        Some(At {
            value: out,
            span: v.span(),
        })
    }

    /// An optional array of integers.
    pub(crate) fn opt_int_array(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
    ) -> Option<At<Vec<At<i64>>>> {
        let v = self.raw(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(sink, key, v, "an array of integers");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let parsed = match item.get_ref() {
                DeValue::Integer(i) => {
                    let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                    i64::from_str_radix(&digits, i.radix()).ok()
                }
                _ => None,
            };
            match parsed {
                Some(n) => out.push(At {
                    value: n,
                    span: item.span(),
                }),
                None => sink.error(
                    &item.span(),
                    format!(
                        "{}: `{key}` must contain only integers, found {}",
                        self.name,
                        type_name(item.get_ref())
                    ),
                ),
            }
        }
        Some(At {
            value: out,
            span: v.span(),
        })
    }

    /// An optional table of string values, in file order of appearance.
    pub(crate) fn opt_str_map(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
    ) -> Option<Vec<(At<String>, At<String>)>> {
        let v = self.raw(key)?;
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(sink, key, v, "a table of strings");
            return None;
        };
        let mut out = Vec::with_capacity(t.len());
        for (k, val) in t.iter() {
            let name = At {
                value: k.get_ref().to_string(),
                span: k.span(),
            };
            match val.get_ref() {
                DeValue::String(s) => out.push((
                    name,
                    At {
                        value: s.to_string(),
                        span: val.span(),
                    },
                )),
                other => sink.error(
                    &val.span(),
                    format!(
                        "{}: `{key}.{}` must be a string, found {}",
                        self.name,
                        k.get_ref(),
                        type_name(other)
                    ),
                ),
            }
        }
        out.sort_by_key(|(k, _)| k.span.start);
        Some(out)
    }

    /// Reports every key of the table that no accessor asked for, suggesting the nearest known one.
    pub(crate) fn finish(self, sink: &mut Sink<'_>) {
        for (k, _) in self.table.iter() {
            let key: &str = k.get_ref();
            if self.asked.contains(&key) {
                continue;
            }
            let hint = nearest(key, self.asked.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            sink.error(
                &k.span(),
                format!("{}: unknown key `{key}`{hint}", self.name),
            );
        }
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Parses a whole file; a syntax error becomes one diagnostic at its position.
pub(crate) fn parse<'i>(
    file: &'i SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<DeTable<'i>>> {
    match DeTable::parse(&file.text) {
        Ok(t) => Some(t),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().replace('\n', " ");
            diags.push(file.diag(&span, format!("invalid TOML: {msg}")));
            None
        }
    }
}
