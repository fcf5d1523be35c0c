//! The DEMO IdP's test citizens: plausible, clearly fake people whose fiscal numbers are computed
//! with the real algorithm (so every check a back-end runs on them passes), and e-mail addresses on
//! `example.org`.

/// One test citizen.
#[derive(Debug, Clone)]
pub struct Citizen {
    /// Given name.
    pub name: &'static str,
    /// Family name.
    pub family_name: &'static str,
    /// `M` or `F`.
    pub gender: char,
    /// Birth date, `YYYY-MM-DD`.
    pub birth: &'static str,
    /// Cadastral code of the birthplace (e.g. `H501`, Rome).
    pub birthplace: &'static str,
    /// Birthplace, for the page.
    pub birthplace_name: &'static str,
    /// County of birth.
    pub county: &'static str,
    /// E-mail.
    pub email: &'static str,
    /// Mobile phone.
    pub mobile: &'static str,
}

/// The people the DEMO IdP offers.
pub const CITIZENS: &[Citizen] = &[
    Citizen {
        name: "Mario",
        family_name: "Rossi",
        gender: 'M',
        birth: "1980-01-01",
        birthplace: "H501",
        birthplace_name: "Roma",
        county: "RM",
        email: "mario.rossi@example.org",
        mobile: "+393330000001",
    },
    Citizen {
        name: "Giulia",
        family_name: "Bianchi",
        gender: 'F',
        birth: "1992-07-14",
        birthplace: "E715",
        birthplace_name: "Lucca",
        county: "LU",
        email: "giulia.bianchi@example.org",
        mobile: "+393330000002",
    },
    Citizen {
        name: "Niccolò",
        family_name: "Lazzeri",
        gender: 'M',
        birth: "1975-03-09",
        birthplace: "B648",
        birthplace_name: "Capannori",
        county: "LU",
        email: "niccolo.lazzeri@example.org",
        mobile: "+393330000003",
    },
    Citizen {
        name: "Anna Maria",
        family_name: "Del Carlo",
        gender: 'F',
        birth: "1958-11-30",
        birthplace: "G882",
        birthplace_name: "Porcari",
        county: "LU",
        email: "annamaria.delcarlo@example.org",
        mobile: "+393330000004",
    },
];

fn letters(s: &str) -> (Vec<char>, Vec<char>) {
    let mut consonants = Vec::new();
    let mut vowels = Vec::new();
    for c in s.chars().flat_map(char::to_uppercase) {
        let c = match c {
            'À' | 'Á' => 'A',
            'È' | 'É' => 'E',
            'Ì' | 'Í' => 'I',
            'Ò' | 'Ó' => 'O',
            'Ù' | 'Ú' => 'U',
            c => c,
        };
        match c {
            'A' | 'E' | 'I' | 'O' | 'U' => vowels.push(c),
            c if c.is_ascii_uppercase() => consonants.push(c),
            _ => {}
        }
    }
    (consonants, vowels)
}

fn three(mut chars: Vec<char>) -> String {
    chars.resize(3.max(chars.len()), 'X');
    chars.into_iter().take(3).collect()
}

fn family_code(family: &str) -> String {
    let (c, v) = letters(family);
    three(c.into_iter().chain(v).collect())
}

fn name_code(name: &str) -> String {
    let (c, v) = letters(name);
    if c.len() >= 4 {
        // With four or more consonants: the first, third and fourth.
        return [c[0], c[2], c[3]].iter().collect();
    }
    three(c.into_iter().chain(v).collect())
}

const MONTHS: [char; 12] = ['A', 'B', 'C', 'D', 'E', 'H', 'L', 'M', 'P', 'R', 'S', 'T'];
const ODD: [u32; 36] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
    23, // A-Z
];

/// The check character of the first 15 characters of a fiscal number.
pub fn check_char(first15: &str) -> Option<char> {
    let mut sum = 0;
    for (i, c) in first15.chars().enumerate() {
        let index = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => 10 + c as u32 - 'A' as u32,
            _ => return None,
        };
        sum += if i % 2 == 0 {
            ODD[index as usize]
        } else if index < 10 {
            index
        } else {
            index - 10
        };
    }
    char::from_u32('A' as u32 + sum % 26)
}

impl Citizen {
    /// The fiscal number, computed (family, name, year, month, day + 40 for women, birthplace,
    /// check character).
    pub fn fiscal_number(&self) -> String {
        let year = &self.birth[2..4];
        let month: usize = self.birth[5..7].parse().unwrap_or(1);
        let day: u32 = self.birth[8..10].parse().unwrap_or(1);
        let day = if self.gender == 'F' { day + 40 } else { day };
        let first15 = format!(
            "{}{}{year}{}{day:02}{}",
            family_code(self.family_name),
            name_code(self.name),
            MONTHS[month.clamp(1, 12) - 1],
            self.birthplace
        );
        let check = check_char(&first15).unwrap_or('X');
        format!("{first15}{check}")
    }

    /// SPID attributes (SAML name, value) this citizen has.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        vec![
            ("spidCode", format!("DEMO{}", &self.fiscal_number()[..10])),
            ("name", self.name.into()),
            ("familyName", self.family_name.into()),
            ("fiscalNumber", format!("TINIT-{}", self.fiscal_number())),
            ("dateOfBirth", self.birth.into()),
            ("placeOfBirth", self.birthplace.into()),
            ("countyOfBirth", self.county.into()),
            ("gender", self.gender.to_string()),
            ("email", self.email.into()),
            ("mobilePhone", self.mobile.into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiscal_numbers_follow_the_official_algorithm() {
        // A well-known valid example, and the rules for short names, women and accents.
        assert_eq!(CITIZENS[0].fiscal_number(), "RSSMRA80A01H501U");
        assert_eq!(check_char("RSSMRA80A01H501"), Some('U'));
        assert_eq!(name_code("Giulia"), "GLI");
        assert_eq!(name_code("Niccolò"), "NCL");
        assert_eq!(family_code("Del Carlo"), "DLC");
        assert_eq!(name_code("Anna Maria"), "NMR");
        assert_eq!(family_code("Fo"), "FOX");
        let giulia = CITIZENS[1].fiscal_number();
        assert_eq!(&giulia[..11], "BNCGLI92L54");
        for c in CITIZENS {
            let cf = c.fiscal_number();
            assert_eq!(cf.len(), 16);
            assert_eq!(check_char(&cf[..15]), cf.chars().last(), "{cf}");
        }
    }
}
