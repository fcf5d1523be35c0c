//! Identity vocabulary shared by every crate: assurance levels and SPID attribute names.

use std::fmt;
use std::str::FromStr;

/// A SPID/CIE level of assurance. Ordered: `SpidL1 < SpidL2 < SpidL3`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    /// SPID level 1: user name and password.
    SpidL1,
    /// SPID level 2: two factors (also CIE).
    SpidL2,
    /// SPID level 3: hardware credential (also CIE).
    SpidL3,
}

impl Level {
    /// Every level, weakest first.
    pub const ALL: [Level; 3] = [Level::SpidL1, Level::SpidL2, Level::SpidL3];

    /// The name used in configuration and headers (`SpidL2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::SpidL1 => "SpidL1",
            Level::SpidL2 => "SpidL2",
            Level::SpidL3 => "SpidL3",
        }
    }

    /// The SAML `AuthnContextClassRef` of this level.
    pub fn class_ref(self) -> &'static str {
        match self {
            Level::SpidL1 => "https://www.spid.gov.it/SpidL1",
            Level::SpidL2 => "https://www.spid.gov.it/SpidL2",
            Level::SpidL3 => "https://www.spid.gov.it/SpidL3",
        }
    }

    /// What a citizen reads: "SPID livello 2 o CIE".
    pub fn label_it(self) -> String {
        self.methods_it(true)
    }

    /// The SPID part of it: "SPID livello 2 o superiore".
    pub fn spid_label_it(self) -> &'static str {
        match self {
            Level::SpidL1 => "SPID livello 1 o superiore",
            Level::SpidL2 => "SPID livello 2 o superiore",
            Level::SpidL3 => "SPID livello 3",
        }
    }

    /// The ways in at this level, as citizens read them: SPID, and CIE when it is offered.
    pub fn methods_it(self, cie: bool) -> String {
        if cie {
            format!("{}, oppure CIE", self.spid_label_it())
        } else {
            self.spid_label_it().to_string()
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Level::ALL.into_iter().find(|l| l.as_str() == s).ok_or(())
    }
}

/// What a service requires before a request may reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone; no identity is sent upstream.
    Public,
    /// A session at this level or higher.
    Login(Level),
}

impl Access {
    /// The configuration spelling: `public`, `SpidL1`...
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Login(l) => l.as_str(),
        }
    }
}

macro_rules! attributes {
    ($($variant:ident => $name:literal, $cie:literal, $label:literal;)*) => {
        /// A SPID attribute name (Regole tecniche, "attributi"); CIE releases a subset.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Attribute {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Attribute {
            /// Every attribute SPID defines.
            pub const ALL: &'static [Attribute] = &[$(Attribute::$variant),*];

            /// The SAML attribute `Name`.
            pub fn as_str(self) -> &'static str {
                match self { $(Attribute::$variant => $name),* }
            }

            /// Whether CIE releases it (eIDAS minimum data set only).
            pub fn in_cie(self) -> bool {
                match self { $(Attribute::$variant => $cie),* }
            }

            /// What citizens call it, with its article ("l'indirizzo email").
            pub fn label_it(self) -> &'static str {
                match self { $(Attribute::$variant => $label),* }
            }
        }
    };
}

attributes! {
    SpidCode => "spidCode", false, "il codice identificativo SPID";
    Name => "name", true, "il nome";
    FamilyName => "familyName", true, "il cognome";
    PlaceOfBirth => "placeOfBirth", false, "il luogo di nascita";
    CountyOfBirth => "countyOfBirth", false, "la provincia di nascita";
    DateOfBirth => "dateOfBirth", true, "la data di nascita";
    Gender => "gender", false, "il sesso";
    CompanyName => "companyName", false, "la ragione sociale";
    RegisteredOffice => "registeredOffice", false, "la sede legale";
    FiscalNumber => "fiscalNumber", true, "il codice fiscale";
    IvaCode => "ivaCode", false, "la partita IVA";
    IdCard => "idCard", false, "il documento d'identità";
    MobilePhone => "mobilePhone", false, "il numero di cellulare";
    Email => "email", false, "l'indirizzo email";
    Address => "address", false, "il domicilio fisico";
    ExpirationDate => "expirationDate", false, "la data di scadenza dell'identità";
    DigitalAddress => "digitalAddress", false, "il domicilio digitale (PEC)";
    CompanyFiscalNumber => "companyFiscalNumber", false, "il codice fiscale dell'impresa";
    DomicileStreetAddress => "domicileStreetAddress", false, "l'indirizzo del domicilio";
    DomicilePostalCode => "domicilePostalCode", false, "il CAP del domicilio";
    DomicileMunicipality => "domicileMunicipality", false, "il comune del domicilio";
    DomicileProvince => "domicileProvince", false, "la provincia del domicilio";
    DomicileNation => "domicileNation", false, "la nazione del domicilio";
}

/// A set of [`Attribute`]s, as a bit mask: what a session was given, what a service needs.
/// `Copy` and allocation-free, for the per-request decision.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AttributeMask(u32);

impl AttributeMask {
    /// No attribute.
    pub const EMPTY: AttributeMask = AttributeMask(0);

    fn bit(a: Attribute) -> u32 {
        1 << (a as u32)
    }

    /// Adds one attribute.
    pub fn insert(&mut self, a: Attribute) {
        self.0 |= Self::bit(a);
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Attribute) -> bool {
        self.0 & Self::bit(a) != 0
    }

    /// Whether every attribute of `other` is in the set.
    pub fn covers(self, other: AttributeMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub fn union(self, other: AttributeMask) -> AttributeMask {
        AttributeMask(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attributes, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Attribute> {
        Attribute::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Attribute> for AttributeMask {
    fn from_iter<I: IntoIterator<Item = Attribute>>(iter: I) -> Self {
        let mut set = AttributeMask::EMPTY;
        for a in iter {
            set.insert(a);
        }
        set
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stores and JSON keep an attribute by its SAML name (`"fiscalNumber"`).
impl serde::Serialize for Attribute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Attribute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        name.parse()
            .map_err(|()| serde::de::Error::custom(format!("unknown attribute {name}")))
    }
}

impl FromStr for Attribute {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Attribute::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_sets_cover_what_they_hold() {
        const _: () = assert!(Attribute::ALL.len() <= 32, "AttributeMask is a u32");
        let held: AttributeMask = [Attribute::FiscalNumber, Attribute::Name]
            .into_iter()
            .collect();
        let need_email: AttributeMask = [Attribute::Email].into_iter().collect();
        assert!(held.covers(AttributeMask::EMPTY));
        assert!(held.covers([Attribute::Name].into_iter().collect()));
        assert!(!held.covers(need_email));
        assert!(held.union(need_email).covers(need_email));
        assert_eq!(
            held.iter().collect::<Vec<_>>(),
            vec![Attribute::Name, Attribute::FiscalNumber]
        );
        let all: AttributeMask = Attribute::ALL.iter().copied().collect();
        assert_eq!(all.iter().count(), Attribute::ALL.len());
    }

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Level::SpidL1 < Level::SpidL2 && Level::SpidL2 < Level::SpidL3);
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
        }
        assert!("spidl2".parse::<Level>().is_err());
        assert!("SpidL4".parse::<Level>().is_err());
    }

    #[test]
    fn attributes_round_trip_and_cie_subset() {
        for a in Attribute::ALL {
            assert_eq!(a.as_str().parse::<Attribute>(), Ok(*a));
        }
        let cie: Vec<_> = Attribute::ALL.iter().filter(|a| a.in_cie()).collect();
        assert_eq!(cie.len(), 4);
        assert!("FiscalNumber".parse::<Attribute>().is_err());
    }
}
