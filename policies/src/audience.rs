//! Which SP entity a login is made for, and so which services its session serves.
//!
//! In `sp.mode = "single"` there is one entity, the SP of `[sp]`. In aggregator mode each comune
//! is an aggregated SP of its own (`<public_url>/pub-ag-full/<ipa_code>`): the IdP asserts an
//! identity to that entity only (its `Audience`), so a session obtained for one comune serves
//! that comune's services and no other's.

use std::borrow::Cow;

use crate::config::{Config, SpMode, AGGREGATED_PATH};
use crate::policy::{Comune, IpaCode};

/// The SP entity a login was made for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The SP of `[sp]` (in aggregator mode, the aggregator's own).
    #[default]
    Sp,
    /// A comune as an aggregated SP.
    Comune(IpaCode),
}

impl Audience {
    /// Whether this is the SP of `[sp]`.
    pub fn is_sp(&self) -> bool {
        matches!(self, Audience::Sp)
    }

    /// The path suffix of this entity's endpoints: empty for the SP, `/<ipa_code>` for a comune.
    pub fn path_suffix(&self) -> Cow<'static, str> {
        match self {
            Audience::Sp => Cow::Borrowed(""),
            Audience::Comune(ipa) => Cow::Owned(format!("/{}", ipa.as_str())),
        }
    }
}

impl Config {
    /// The entity whose login serves `comune`'s services.
    pub fn audience_for(&self, comune: &Comune) -> Audience {
        match self.sp.mode {
            SpMode::Single => Audience::Sp,
            SpMode::Aggregator(_) => Audience::Comune(comune.ipa_code.clone()),
        }
    }

    /// The entityID of `audience`: `sp.entity_id`, or `<public_url>/pub-ag-full/<ipa_code>`.
    pub fn entity_id(&self, audience: &Audience) -> Cow<'_, str> {
        match audience {
            Audience::Sp => Cow::Borrowed(&self.sp.entity_id),
            Audience::Comune(ipa) => Cow::Owned(format!(
                "{}/{AGGREGATED_PATH}/{}",
                self.server.public_url.url.as_str().trim_end_matches('/'),
                ipa.as_str()
            )),
        }
    }
}
