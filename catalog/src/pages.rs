//! The pages: the portal's service list and the error pages.

use policies::Level;
pub use policies::LoginFailure;

use crate::html::{render, Site};

/// The error pages a request can end on, each with its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPage {
    /// 400: a request target varco refuses to interpret.
    BadRequest,
    /// 404: unknown host or path.
    NotFound,
    /// 502: the back-end could not be reached or answered badly.
    BadGateway,
    /// 504: the back-end did not answer in time.
    GatewayTimeout,
    /// 500: something failed inside varco.
    Internal,
    /// 503: the shared session store cannot be reached.
    Unavailable,
    /// 429: too many login requests from one client.
    TooManyRequests,
}

impl ErrorPage {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorPage::BadRequest => 400,
            ErrorPage::NotFound => 404,
            ErrorPage::BadGateway => 502,
            ErrorPage::GatewayTimeout => 504,
            ErrorPage::Internal => 500,
            ErrorPage::Unavailable => 503,
            ErrorPage::TooManyRequests => 429,
        }
    }

    fn text(self) -> (&'static str, &'static str) {
        match self {
            ErrorPage::BadRequest => (
                "Richiesta non valida",
                "L'indirizzo richiesto contiene caratteri o sequenze che non possiamo accettare. Controlla il link oppure torna all'elenco dei servizi.",
            ),
            ErrorPage::NotFound => (
                "Pagina non trovata",
                "Non esiste un servizio a questo indirizzo. Potrebbe essere stato spostato o l'indirizzo potrebbe contenere un errore.",
            ),
            ErrorPage::BadGateway => (
                "Servizio momentaneamente non disponibile",
                "Il servizio del Comune non risponde in questo momento. Riprova tra qualche minuto; se il problema continua, contatta il Comune.",
            ),
            ErrorPage::GatewayTimeout => (
                "Il servizio non ha risposto in tempo",
                "Il servizio del Comune sta impiegando troppo tempo a rispondere. Riprova tra qualche minuto.",
            ),
            ErrorPage::Internal => (
                "Si è verificato un errore",
                "Si è verificato un errore imprevisto. Riprova tra qualche minuto.",
            ),
            ErrorPage::Unavailable => (
                "Accesso momentaneamente non disponibile",
                "Non riusciamo a verificare il tuo accesso in questo momento. Riprova tra qualche minuto: non serve ripetere il login se lo hai già fatto.",
            ),
            ErrorPage::TooManyRequests => (
                "Troppe richieste",
                "Da questa connessione sono arrivate troppe richieste di accesso in poco tempo. Attendi qualche secondo, poi riprova.",
            ),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    text: &'a str,
    status: u16,
}

/// The full HTML of an error page.
pub fn error_page(site: &Site, page: ErrorPage) -> String {
    let (title, text) = page.text();
    render(&ErrorTemplate {
        site,
        title,
        text,
        status: page.status(),
    })
}

/// The page for a login that did not complete (SPID "messaggi di errore": each user code has its
/// own explanation and what to do next).
pub fn login_failed_page(site: &Site, failure: LoginFailure) -> String {
    let (title, text) = match failure {
        LoginFailure::Spid(19) => ("Troppi tentativi di accesso", "Hai inserito credenziali errate troppe volte. Attendi qualche minuto, oppure recupera le credenziali presso il tuo gestore di identità digitale, poi riprova."),
        LoginFailure::Spid(20) => ("Credenziali non adatte", "Il servizio richiede un livello di sicurezza più alto di quello delle credenziali che hai usato. Attiva presso il tuo gestore le credenziali di livello richiesto (ad esempio l'app o l'OTP) e riprova."),
        LoginFailure::Spid(21) => ("Tempo scaduto", "È passato troppo tempo durante l'accesso e la sessione è scaduta. Riprova."),
        LoginFailure::Spid(22) => ("Consenso negato", "Non hai dato il consenso a trasmettere i tuoi dati al servizio, quindi non è possibile accedere. Se vuoi usare il servizio, riprova e acconsenti all'invio dei dati."),
        LoginFailure::Spid(23) => ("Identità sospesa o revocata", "La tua identità digitale risulta sospesa o revocata. Contatta il tuo gestore di identità digitale."),
        LoginFailure::Spid(25) => ("Accesso annullato", "Hai annullato l'accesso. Se vuoi usare il servizio, riprova."),
        LoginFailure::Spid(30) => ("Tipo di identità non ammesso", "Il servizio non accetta il tipo di identità digitale che hai usato (ad esempio un'identità professionale). Riprova con la tua identità personale."),
        LoginFailure::Spid(_) => ("Accesso non riuscito", "Il gestore di identità digitale non ha completato l'accesso. Riprova; se il problema continua, contatta il tuo gestore."),
        LoginFailure::Expired => ("Accesso non completato", "L'accesso è scaduto, è già stato usato oppure è stato avviato in un'altra finestra o in un altro browser. Riprova dall'inizio."),
        LoginFailure::Rejected => ("Accesso non riuscito", "La risposta del gestore di identità digitale non è valida, per questo non possiamo farti accedere. Riprova; se il problema continua, contatta l'assistenza."),
        LoginFailure::OtherPerson => ("Sessione di un'altra persona", "Su questo sito è già aperta la sessione di un'altra persona, e non la sostituiamo senza che tu lo sappia. Esci da quella sessione, poi accedi di nuovo con la tua identità."),
        LoginFailure::Denied => ("Accesso negato", "L'accesso è stato annullato, oppure non hai dato il consenso a trasmettere i tuoi dati al servizio. Se vuoi usare il servizio, riprova e acconsenti all'invio dei dati."),
        LoginFailure::InteractionRequired => ("Accesso da ripetere", "Il gestore dell'identità chiede che tu acceda di nuovo, scelga un account oppure dia il consenso prima di continuare. Riprova: ti sarà chiesto di farlo."),
        LoginFailure::ProviderFailed => ("Servizio di accesso non disponibile", "Il gestore dell'identità non è riuscito a completare l'accesso. Riprova tra qualche minuto; se il problema continua, contatta l'assistenza."),
        LoginFailure::NoCertificate => ("Carta non trovata", "Il browser non ha inviato il certificato della carta. Inserisci la Carta Nazionale dei Servizi (la tessera sanitaria con il chip) nel lettore, controlla che il software del lettore sia installato, poi chiudi il browser, riaprilo e riprova; quando il browser lo chiede, scegli il certificato della carta e inserisci il PIN."),
        LoginFailure::CertificateRevoked => ("Carta revocata o sospesa", "Il certificato della tua carta risulta revocato o sospeso, per questo non possiamo farti accedere. Rivolgiti all'ente che ha emesso la carta (per la tessera sanitaria, la tua ASL o la Regione), oppure accedi con SPID o CIE."),
        LoginFailure::CertificateRefused => ("Carta non valida", "Il certificato che il browser ha inviato non è quello di una Carta Nazionale dei Servizi valida: può essere scaduto, di un altro tipo o di un emittente non riconosciuto. Riprova scegliendo il certificato della carta, oppure accedi con SPID o CIE."),
    };
    render(&LoginFailedTemplate {
        site,
        title,
        text,
        spid_code: match failure {
            LoginFailure::Spid(c) => Some(c),
            _ => None,
        },
        other_person: failure == LoginFailure::OtherPerson,
    })
}

#[derive(askama::Template)]
#[template(path = "login_failed.html")]
struct LoginFailedTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    text: &'a str,
    spid_code: Option<u8>,
    other_person: bool,
}

/// The inline script of [`post_binding_page`]; its CSP hash is computed from this text.
pub const POST_BINDING_SCRIPT: &str = "document.getElementById('saml').submit();";

/// The page that sends the browser on with a SAML message by HTTP-POST: a form submitted at once
/// by a one-line script, with a button for browsers without JavaScript.
pub fn post_binding_page(site: &Site, action: &str, fields: &[(&str, &str)]) -> String {
    render(&PostBindingTemplate {
        site,
        title: "Accesso in corso",
        action,
        fields,
        script: POST_BINDING_SCRIPT,
    })
}

#[derive(askama::Template)]
#[template(path = "post_binding.html")]
struct PostBindingTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
    script: &'static str,
}

#[derive(askama::Template)]
#[template(path = "logged_out.html")]
struct LoggedOutTemplate<'a> {
    site: &'a Site,
    title: &'a str,
}

/// The page after a logout.
pub fn logged_out_page(site: &Site) -> String {
    render(&LoggedOutTemplate {
        site,
        title: "Sei uscito",
    })
}

#[derive(askama::Template)]
#[template(path = "continue.html")]
struct ContinueTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    to: &'a str,
}

/// The answer to a form that another site posted here (the IdP's answer, a confirmed logout)
/// when it goes on elsewhere: a page, not a redirect, because browsers apply the posting page's
/// `form-action` to every redirect after the POST, and an IdP's page cannot list every comune's
/// host. The browser goes on by the `Refresh` header its response carries; the link is for when
/// it does not.
pub fn continue_page(site: &Site, to: &str) -> String {
    render(&ContinueTemplate {
        site,
        title: "Un momento",
        to,
    })
}

#[derive(askama::Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmTemplate<'a> {
    site: &'a Site,
    title: &'a str,
}

/// The question asked before a logout that another site started (a link or a form elsewhere
/// must not be able to log a citizen out): a button that posts to `/.sso/logout`.
pub fn logout_confirm_page(site: &Site) -> String {
    render(&LogoutConfirmTemplate {
        site,
        title: "Vuoi uscire?",
    })
}

/// One identity provider on the choice page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpChoice {
    /// Name shown.
    pub name: String,
    /// The link that starts the login with it.
    pub href: String,
    /// Which button it is behind: the SPID list, "Entra con CIE", or a button of its own
    /// ("Entra con <name>", for a provider that is neither, such as the Region's platform).
    pub kind: policies::IdpKind,
    /// Logo from its metadata (https or data: URI, already checked), shown next to the name.
    pub logo: Option<String>,
}

/// The CIE mark: a white card (decorative; the button's text says what it is).
const CIE_ICON: &str = "<svg class=\"mark\" aria-hidden=\"true\" focusable=\"false\" viewBox=\"0 0 24 24\" width=\"24\" height=\"24\"><rect x=\"2\" y=\"5\" width=\"20\" height=\"14\" rx=\"2\" fill=\"#fff\"/><circle cx=\"8\" cy=\"12\" r=\"2.5\" fill=\"#0066cc\"/><path d=\"M13 10h6M13 14h4\" stroke=\"#0066cc\" stroke-width=\"1.5\"/></svg>";

#[derive(askama::Template)]
#[template(path = "choice.html")]
struct ChoiceTemplate<'a> {
    site: &'a Site,
    title: &'a str,
    service: Option<&'a str>,
    methods: String,
    cie_note: Option<String>,
    login_for: Option<&'a str>,
    spid: Vec<&'a IdpChoice>,
    cie: Vec<&'a IdpChoice>,
    other: Vec<&'a IdpChoice>,
    cie_icon: &'static str,
    empty: bool,
}

/// The SPID/CIE choice page, after AgID's access button (`spid-sp-access-button`: the SPID mark,
/// "Entra con SPID", the providers, and "Maggiori informazioni / Non hai SPID? / Serve aiuto?"),
/// rendered on the server so that it works without JavaScript: "Entra con SPID" opens the list
/// of SPID providers (in the order given: the caller shuffles them, as AgID requires a random
/// order), "Entra con CIE" leads to the CIE login; the page says which service asks and at what
/// level. Mobile first (full-width 48-px targets), keyboard and screen-reader usable
/// (`details`/`summary` announce their state; every link is text).
///
/// The text names the ways in that the page offers: CIE only when a CIE button is there. When
/// CIE is configured but withheld because the service needs what CIE cannot release
/// (`cie_withheld`: those attributes), one line says so.
pub fn login_choice_page(
    site: &Site,
    idps: &[IdpChoice],
    service: Option<&str>,
    level: Level,
    cie_withheld: &[policies::Attribute],
    login_for: Option<&str>,
) -> String {
    use policies::IdpKind;
    let of = |k: IdpKind| -> Vec<&IdpChoice> { idps.iter().filter(|i| i.kind == k).collect() };
    let (spid, cie, other) = (of(IdpKind::Spid), of(IdpKind::Cie), of(IdpKind::Other));
    let others = || {
        other
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(" o ")
    };
    let methods = match (spid.is_empty(), cie.is_empty(), other.is_empty()) {
        (true, false, _) if other.is_empty() => "CIE".to_string(),
        (true, true, false) => others(),
        (false, _, false) => format!("{} oppure {}", level.methods_it(!cie.is_empty()), others()),
        _ => level.methods_it(!cie.is_empty()),
    };
    let cie_note = (!cie_withheld.is_empty() && cie.is_empty()).then(|| {
        let labels: Vec<&str> = cie_withheld.iter().map(|a| a.label_it()).collect();
        let list = match labels.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} e {last}", rest.join(", ")),
            None => String::new(),
        };
        format!("L'accesso con CIE non è disponibile per questo servizio: richiede {list}, che la CIE non fornisce.")
    });
    render(&ChoiceTemplate {
        site,
        title: "Accedi",
        service,
        methods,
        cie_note,
        login_for,
        empty: idps.is_empty(),
        spid,
        cie,
        other,
        cie_icon: CIE_ICON,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_are_italian_and_carry_their_code() {
        for p in [
            ErrorPage::BadRequest,
            ErrorPage::NotFound,
            ErrorPage::BadGateway,
            ErrorPage::GatewayTimeout,
            ErrorPage::Internal,
            ErrorPage::Unavailable,
            ErrorPage::TooManyRequests,
        ] {
            let html = error_page(&Site::example(), p);
            assert!(html.contains("lang=\"it\""));
            assert!(html.contains(&format!("Codice errore: {}", p.status())));
            assert!(html.contains("<main id=\"contenuto\""));
            // The layout: the kit's stylesheet served by varco, the skip link, the owner, and
            // the links AgID asks of PA sites.
            assert!(html.contains("href=\"/.sso/assets/bootstrap-italia.min.css?v="));
            assert!(html.contains("href=\"#contenuto\">Vai al contenuto</a>"));
            assert!(html.contains("Regione Toscana"));
            assert!(html.contains(">Dichiarazione di accessibilità</a>"));
            assert!(html.contains(">Informativa sulla privacy</a>"));
            assert!(
                !html.contains("style="),
                "no inline style: the CSP allows none"
            );
        }
    }

    #[test]
    fn names_are_escaped() {
        let choices = [IdpChoice {
            name: "<b>IdP</b>".into(),
            href: "/x?a=1&b=\"><script>".into(),
            kind: policies::IdpKind::Spid,
            logo: Some("https://idp.example/l.svg?a=1&b=2".into()),
        }];
        let html = login_choice_page(
            &Site::example(),
            &choices,
            Some("\"><script>alert(1)</script>"),
            Level::SpidL2,
            &[],
            None,
        );
        assert!(!html.contains("<script>alert") && !html.contains("\"><script>"));
        assert!(html.contains("&lt;b&gt;IdP&lt;/b&gt;"));
        assert!(html.contains("SPID livello 2"));
        assert!(html.contains("src=\"https://idp.example/l.svg?a=1&amp;b=2\""));
    }

    fn choice(name: &str, cie: bool) -> IdpChoice {
        IdpChoice {
            name: name.into(),
            href: format!("/.sso/login?idp={name}"),
            kind: if cie {
                policies::IdpKind::Cie
            } else {
                policies::IdpKind::Spid
            },
            logo: None,
        }
    }

    #[test]
    fn a_provider_of_its_own_gets_its_own_button() {
        let idps = [
            choice("Poste", false),
            IdpChoice {
                name: "Regione Toscana".into(),
                href: "/.sso/login?idp=https%3A%2F%2Farpa.example".into(),
                kind: policies::IdpKind::Other,
                logo: None,
            },
        ];
        let html = login_choice_page(&Site::example(), &idps, None, Level::SpidL2, &[], None);
        assert!(html.contains("Entra con Regione Toscana"), "{html}");
        assert!(html.contains("oppure Regione Toscana"), "{html}");
        assert!(html.contains("href=\"/.sso/login?idp=https%3A%2F%2Farpa.example\""));
        let only = login_choice_page(&Site::example(), &idps[1..], None, Level::SpidL2, &[], None);
        assert!(
            only.contains("Accedi con <strong>Regione Toscana</strong>"),
            "{only}"
        );
        assert!(!only.contains("Entra con SPID"));
    }

    #[test]
    fn the_choice_page_follows_the_access_button() {
        let idps = [
            choice("Poste", false),
            choice("Aruba", false),
            choice("CIE", true),
        ];
        let html = login_choice_page(
            &Site::example(),
            &idps,
            Some("TARI"),
            Level::SpidL2,
            &[],
            None,
        );
        // SPID: a disclosure button with the providers in the order given (shuffled by the caller).
        let spid = html.find("Entra con SPID").expect("SPID button");
        let (poste, aruba) = (
            html.find(">Poste<").expect("p"),
            html.find(">Aruba<").expect("a"),
        );
        assert!(spid < poste && poste < aruba);
        assert!(html.contains("<details class=\"idp-menu\"><summary class=\"btn-access\">"));
        assert!(html.contains("aria-label=\"Gestori di identità SPID\""));
        assert!(html.contains("Non hai SPID?"));
        // One CIE entry: a direct button.
        assert!(html.contains("<a class=\"btn-access\" href=\"/.sso/login?idp=CIE\">"));
        assert!(html.contains("Per usare <strong>TARI</strong>"));
        // Decorative marks are hidden from screen readers.
        assert_eq!(
            html.matches("<svg").count(),
            html.matches("aria-hidden=\"true\"").count()
        );
        // Two CIE entries (production and pre-production): a list.
        let two = login_choice_page(
            &Site::example(),
            &[choice("CIE", true), choice("CIE test", true)],
            None,
            Level::SpidL3,
            &[],
            None,
        );
        assert!(two.contains("aria-label=\"Accesso con CIE\"") && !two.contains("Entra con SPID"));
        assert!(
            login_choice_page(&Site::example(), &[], None, Level::SpidL1, &[], None)
                .contains("Nessun gestore")
        );
    }

    #[test]
    fn the_text_names_only_the_ways_in_the_page_offers() {
        use policies::Attribute;
        let with_cie = login_choice_page(
            &Site::example(),
            &[choice("Poste", false), choice("CIE", true)],
            Some("TARI"),
            Level::SpidL2,
            &[],
            None,
        );
        assert!(with_cie.contains("<strong>SPID livello 2 o superiore, oppure CIE</strong>"));
        assert!(!with_cie.contains("L'accesso vale per"));
        // Aggregator mode: the login is made for the service's comune, and the page says so.
        let aggregated = login_choice_page(
            &Site::example(),
            &[choice("Poste", false)],
            Some("TARI"),
            Level::SpidL2,
            &[],
            Some("Comune di Capannori"),
        );
        assert!(
            aggregated
                .contains("L'accesso vale per i servizi di <strong>Comune di Capannori</strong>"),
            "{aggregated}"
        );
        // CIE configured but withheld: the text does not promise it, and says why in one line.
        let without = login_choice_page(
            &Site::example(),
            &[choice("Poste", false)],
            Some("Mensa"),
            Level::SpidL2,
            &[Attribute::Email, Attribute::MobilePhone],
            None,
        );
        assert!(without.contains("<strong>SPID livello 2 o superiore</strong>"));
        assert!(!without.contains("oppure CIE"));
        assert!(without.contains(
            "L'accesso con CIE non è disponibile per questo servizio: richiede l'indirizzo email e il numero di cellulare, che la CIE non fornisce."
        ));
        assert!(!without.contains("Entra con CIE"));
        // Only CIE: the text says CIE.
        let only_cie = login_choice_page(
            &Site::example(),
            &[choice("CIE", true)],
            None,
            Level::SpidL3,
            &[],
            None,
        );
        assert!(only_cie.contains("Accedi con <strong>CIE</strong>"));
    }
}
