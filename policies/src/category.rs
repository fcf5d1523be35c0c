//! The 15 official service categories ("materie") of the Designers Italia Modello Comuni and of
//! CPSV-AP_IT, which every catalogued service must use (CATALOG.md).

use std::fmt;

macro_rules! categories {
    ($($variant:ident => $slug:literal, $label:literal;)*) => {
        /// One of the 15 official categories of comune services.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Category {
            $(
                #[doc = $label]
                $variant,
            )*
        }

        impl Category {
            /// All categories, in the official order.
            pub const ALL: &'static [Category] = &[$(Category::$variant),*];

            /// The slug used in policy files.
            pub fn slug(self) -> &'static str {
                match self { $(Category::$variant => $slug),* }
            }

            /// The Italian label shown to citizens.
            pub fn label(self) -> &'static str {
                match self { $(Category::$variant => $label),* }
            }
        }
    };
}

categories! {
    EducazioneFormazione => "educazione-e-formazione", "Educazione e formazione";
    SaluteBenessereAssistenza => "salute-benessere-e-assistenza", "Salute, benessere e assistenza";
    VitaLavorativa => "vita-lavorativa", "Vita lavorativa";
    MobilitaTrasporti => "mobilita-e-trasporti", "Mobilità e trasporti";
    CatastoUrbanistica => "catasto-e-urbanistica", "Catasto e urbanistica";
    AnagrafeStatoCivile => "anagrafe-e-stato-civile", "Anagrafe e stato civile";
    Turismo => "turismo", "Turismo";
    GiustiziaSicurezza => "giustizia-e-sicurezza-pubblica", "Giustizia e sicurezza pubblica";
    TributiFinanze => "tributi-finanze-e-contravvenzioni", "Tributi, finanze e contravvenzioni";
    CulturaTempoLibero => "cultura-e-tempo-libero", "Cultura e tempo libero";
    Ambiente => "ambiente", "Ambiente";
    ImpreseCommercio => "imprese-e-commercio", "Imprese e commercio";
    Autorizzazioni => "autorizzazioni", "Autorizzazioni";
    AppaltiPubblici => "appalti-pubblici", "Appalti pubblici";
    AgricolturaPesca => "agricoltura-e-pesca", "Agricoltura e pesca";
}

impl Category {
    /// Parses a slug. "impresa-e-commercio" is accepted too: comuni write it both ways.
    pub fn from_slug(s: &str) -> Option<Self> {
        if s == "impresa-e-commercio" {
            return Some(Category::ImpreseCommercio);
        }
        Category::ALL.iter().copied().find(|c| c.slug() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_categories_with_unique_slugs() {
        assert_eq!(Category::ALL.len(), 15);
        for c in Category::ALL {
            assert_eq!(Category::from_slug(c.slug()), Some(*c));
        }
        assert_eq!(
            Category::from_slug("impresa-e-commercio"),
            Some(Category::ImpreseCommercio)
        );
        assert_eq!(Category::from_slug("Turismo"), None);
    }
}
