//! A fake Gestimum: the REST user import (`Utilisateurs/"Importer"`) that
//! opens a company file with a user and password, reads CSV lines (header
//! first, the request's separator and text identifier), upserts users by
//! `USR_NAME`, refuses lines over the known sizes (and names it chooses to
//! refuse), and answers with the journal and statistics as Gestimum's web services do.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::kernel::admit;
use super::{Kernel, Refusal, Server};

pub const PATH: &str = "/api/rest/Utilisateurs/%22Importer%22";
const SIZES: &[(&str, usize)] = &[("USR_NAME", 20), ("USR_GROUPE", 20), ("SAL_CODE", 3)];
const STAMP: &str = "10/09/2019 11:25:38";

#[derive(Default)]
pub struct Erp {
    /// USR_NAME → column → value.
    pub users: BTreeMap<String, BTreeMap<String, String>>,
    /// USR_NAMEs whose lines are not imported ("utilisateur réservé").
    pub refused_names: Vec<String>,
    /// Repeat the password given in the refusal of wrong credentials (a
    /// careless server: the client must mask it).
    pub echo_password: bool,
    /// Import requests that got as far as reading the lines, and their line counts.
    pub imports: Vec<usize>,
}

/// The ERP; its requests are counted as "import".
pub type Fake = Server<Erp>;

struct Shared {
    kernel: Arc<Kernel<Erp>>,
    company: String,
    user: String,
    password: String,
}

/// How the ERP words the kernel's refusals. It reads its credentials in
/// the request body (see `import`), so the kernel never refuses them.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => refused("Utilisateur ou mot de passe incorrect"),
        Refusal::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"error\":\"trop de requêtes\"}",
        )
            .into_response(),
        Refusal::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service indisponible").into_response()
        }
    }
}

impl Fake {
    pub fn start(company: &str, user: &str, password: &str) -> Fake {
        let (company, user, password) = (company.into(), user.into(), password.into());
        Server::launch(Kernel::new(Erp::default(), None, refusal), |kernel| {
            let shared = Arc::new(Shared {
                kernel,
                company,
                user,
                password,
            });
            Router::new().route(PATH, post(import)).with_state(shared)
        })
    }

    /// USR_NAME → (USR_GROUPE, SAL_CODE, USR_DORT) of every user.
    pub fn directory(&self) -> BTreeMap<String, (String, String, String)> {
        self.with(|erp| {
            erp.users
                .iter()
                .map(|(name, user)| {
                    let get = |k: &str| user.get(k).cloned().unwrap_or_default();
                    (
                        name.clone(),
                        (get("USR_GROUPE"), get("SAL_CODE"), get("USR_DORT")),
                    )
                })
                .collect()
        })
    }
}

fn refused(message: &str) -> Response {
    axum::Json(json!({"result": [{
        "resultat": "échec",
        "message": message,
        "journal": [format!("{STAMP} {message}")],
    }]}))
    .into_response()
}

/// Splits one line on `separator`, honouring `quote` (doubled inside) when set.
pub fn split_line(line: &str, separator: char, quote: Option<char>) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if Some(c) == quote {
                if chars.peek() == Some(&c) {
                    chars.next();
                    field.push(c);
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == separator {
            fields.push(std::mem::take(&mut field));
            at_start = true;
            continue;
        } else if Some(c) == quote && at_start {
            quoted = true;
        } else {
            field.push(c);
        }
        at_start = false;
    }
    if quoted {
        return Err("guillemet non fermé".into());
    }
    fields.push(field);
    Ok(fields)
}

async fn import(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let admitted = admit!(shared.kernel, "import", None);
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "{\"error\":\"JSON invalide\"}").into_response();
    };
    let root = &request["importer_utilisateurs"];
    let societe = &root["societe"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    if text(&societe["fichier"]) != shared.company {
        return refused(&format!(
            "La société {} n'existe pas",
            text(&societe["fichier"])
        ));
    }
    if text(&societe["utilisateur"]) != shared.user
        || text(&societe["mot_passe"]) != shared.password
    {
        let echo = shared.kernel.lock().echo_password;
        return refused(&if echo {
            format!(
                "Utilisateur ou mot de passe « {} » incorrect",
                text(&societe["mot_passe"])
            )
        } else {
            "Utilisateur ou mot de passe incorrect".into()
        });
    }
    let parametres = &root["parametres"];
    let separator = text(&parametres["separateur_champs"])
        .chars()
        .next()
        .unwrap_or(';');
    let quote = text(&parametres["identificateur_texte"]).chars().next();
    if text(&parametres["entete"]) != "Oui" {
        return refused("Ce faux Gestimum ne lit que des fichiers avec entête");
    }
    let Some(lines) = parametres["fichier_utilisateurs"].as_array() else {
        return refused("Paramètre fichier_utilisateurs obligatoire");
    };
    let lines: Vec<String> = lines.iter().map(text).collect();
    let Some((header, rows)) = lines.split_first() else {
        return refused("Fichier d'utilisateurs vide");
    };
    let Ok(header) = split_line(header, separator, quote) else {
        return refused("Entête illisible");
    };

    let mut journal = vec![
        format!(
            "{STAMP} Ouverture de la société C:\\ProgramData\\Gestimum\\{}",
            shared.company
        ),
        format!(
            "{STAMP} Société C:\\ProgramData\\Gestimum\\{} ouverte",
            shared.company
        ),
        format!("{STAMP} Lancement de la tâche ImporterUtilisateurs"),
    ];
    let (mut imported, mut not_imported) = (0u64, 0u64);
    {
        let mut erp = shared.kernel.lock();
        erp.imports.push(rows.len());
        for (i, row) in rows.iter().enumerate() {
            // Line numbers as a file would have them: the header is line 1.
            let number = i + 2;
            match read_row(&erp, &header, row, separator, quote) {
                Ok((name, values)) => {
                    let user = erp.users.entry(name).or_default();
                    user.extend(values);
                    imported += 1;
                }
                Err(why) => {
                    not_imported += 1;
                    journal.push(format!("{STAMP} Ligne {number} : {why}"));
                }
            }
        }
    }
    if rows.len() > 1 && admitted.wrong_counts() {
        // Statistics that under-count by one (only for several lines: a
        // single line's statistics are always right).
        imported -= imported.min(1);
        not_imported += 1;
    }
    if admitted.malformed() {
        return (StatusCode::OK, "{\"result\":[{\"resultat\":\"succ").into_response();
    }
    journal.extend([
        format!("{STAMP} L'import a été effectué avec succès."),
        format!("{STAMP} Nombre de lignes importées : {imported}"),
        format!("{STAMP} Nombre de lignes non importées : {not_imported}"),
        format!("{STAMP} Tâche ImporterUtilisateurs terminée"),
        format!(
            "{STAMP} Fermeture de la société C:\\ProgramData\\Gestimum\\{}",
            shared.company
        ),
    ]);
    axum::Json(json!({"result": [{
        "resultat": "succès",
        "message": "terminé",
        "journal": journal,
        "statistiques": {
            "nombre_lignes_importées": imported.to_string(),
            "nombre_lignes_non_importées": not_imported.to_string(),
        }
    }]}))
    .into_response()
}

/// A line as (USR_NAME, column → value), or why it is not imported.
fn read_row(
    erp: &Erp,
    header: &[String],
    row: &str,
    separator: char,
    quote: Option<char>,
) -> Result<(String, BTreeMap<String, String>), String> {
    let values = split_line(row, separator, quote)?;
    if values.len() != header.len() {
        return Err(format!(
            "{} champs pour {} colonnes",
            values.len(),
            header.len()
        ));
    }
    let values: BTreeMap<String, String> = header.iter().cloned().zip(values).collect();
    let name = values.get("USR_NAME").cloned().unwrap_or_default();
    if name.is_empty() {
        return Err("USR_NAME obligatoire".into());
    }
    for (column, max) in SIZES {
        if let Some(value) = values.get(*column) {
            let length = value.chars().count();
            if length > *max {
                return Err(format!(
                    "{column} trop long ({length} caractères, {max} au plus)"
                ));
            }
        }
    }
    if let Some(dort) = values.get("USR_DORT")
        && !matches!(dort.as_str(), "0" | "1")
    {
        return Err(format!("USR_DORT {dort:?} invalide (0 ou 1)"));
    }
    if erp.refused_names.contains(&name) {
        return Err(format!("l'utilisateur {name} est réservé"));
    }
    Ok((name, values))
}
