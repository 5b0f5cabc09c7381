use serde_json::json;

use super::*;
use crate::connectors::{PushItem, test_user};
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::secret::Secret;

fn item(fields: &[(&str, &str)], active: bool) -> PushItem {
    test_user("erp", ActionKind::Create, active, fields)
}

#[test]
fn the_body_has_the_documented_shape() {
    let login = Login {
        company: "DEMO.Gestimum".into(),
        user: "DEMO".into(),
        password: Secret::new("pw"),
    };
    let body = import_body(&login, &["USR_NAME;USR_DORT".into(), "BSP;0".into()]);
    assert_eq!(
        body,
        json!({"importer_utilisateurs": {
            "societe": {"fichier": "DEMO.Gestimum", "utilisateur": "DEMO", "mot_passe": "pw",
                        "deconnecter": "Non", "exclusif": "Non"},
            "parametres": {"journal": "Oui", "statistiques": "Oui", "entete": "Oui",
                           "separateur_champs": ";", "identificateur_texte": "\"",
                           "fichier_utilisateurs": ["USR_NAME;USR_DORT", "BSP;0"]}
        }})
    );
}

#[test]
fn lines_have_the_key_first_every_field_and_the_dormant_flag_last() {
    let ana = item(
        &[
            ("USR_NAME", "ANA"),
            ("USR_GROUPE", "ADMIN"),
            ("SAL_CODE", "ANA"),
        ],
        true,
    );
    let mut ben = item(&[("USR_NAME", "BEN")], false);
    // Ben had a group: it is sent empty, to clear it.
    ben.acked_fields = Some(
        [("USR_NAME", "BEN"), ("USR_GROUPE", "VENTE")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    assert_eq!(
        csv_lines(&[&ana, &ben], "USR_DORT", Formulas::Neutralise),
        [
            "USR_NAME;SAL_CODE;USR_GROUPE;USR_DORT",
            "ANA;ANA;ADMIN;0",
            "BEN;;;1"
        ]
    );
    assert_eq!(
        csv_lines(&[&ben], "DORMANT", Formulas::Neutralise),
        ["USR_NAME;USR_GROUPE;DORMANT", "BEN;;1"]
    );
}

#[test]
fn a_changed_usr_name_is_noticed() {
    let fields = |name: &str| -> Fields {
        [("USR_NAME".to_string(), name.to_string())]
            .into_iter()
            .collect()
    };
    let mut ana = item(&[("USR_NAME", "ANA2")], true);
    assert_eq!(renamed(&ana), None);
    ana.acked_fields = Some(fields("ANA2"));
    assert_eq!(renamed(&ana), None);
    ana.acked_fields = Some(fields("ANA"));
    assert_eq!(renamed(&ana), Some("ANA"));
}

#[test]
fn separators_and_quotes_are_quoted() {
    assert_eq!(
        csv_line(["a;b", "plain", "say \"hi\"", ""].map(Cell::plain)),
        "\"a;b\";plain;\"say \"\"hi\"\"\";"
    );
}

#[test]
fn records_gestimum_cannot_take_are_refused_with_the_field_named() {
    assert_eq!(
        check_item(&item(&[("USR_NAME", "ANA")], true), "USR_DORT", Formulas::Neutralise),
        Ok(())
    );
    // 20 characters is the limit, counted in characters, not bytes.
    let twenty = "É".repeat(20);
    assert_eq!(
        check_item(&item(&[("USR_NAME", &twenty)], true), "USR_DORT", Formulas::Neutralise),
        Ok(())
    );
    let cases = [
        (item(&[("USR_GROUPE", "ADMIN")], true), "no USR_NAME"),
        (item(&[("USR_NAME", "")], true), "no USR_NAME"),
        (
            item(
                &[("USR_NAME", "A"), ("USR_GROUPE", "DIRECTION-FINANCIERES")],
                true,
            ),
            "USR_GROUPE \"DIRECTION-FINANCIERES\" is 21 characters; Gestimum holds 20 at most",
        ),
        (
            item(&[("USR_NAME", "A"), ("SAL_CODE", "ABCD")], true),
            "SAL_CODE \"ABCD\" is 4 characters; Gestimum holds 3 at most",
        ),
        (
            item(&[("USR_NAME", "A"), ("USR_NOTE", "two\nlines")], true),
            "USR_NOTE holds a line break",
        ),
        (
            item(&[("USR_NAME", "A"), ("USR_DORT", "0")], true),
            "USR_DORT carries block/unblock",
        ),
    ];
    for (item, expected) in cases {
        let reason = check_item(&item, "USR_DORT", Formulas::Neutralise).unwrap_err().to_string();
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
    }
}

#[test]
fn formula_like_values_go_as_quoted_text_and_phones_as_they_are() {
    let ana = item(
        &[
            ("USR_NAME", "ANA"),
            ("USR_NOM", "=HYPERLINK(\"http://x.example/\";\"Pay\")"),
            ("USR_TEL", "+33 1 23 45 67 89"),
        ],
        true,
    );
    assert_eq!(
        csv_lines(&[&ana], "USR_DORT", Formulas::Neutralise)[1],
        r#"ANA;"'=HYPERLINK(""http://x.example/"";""Pay"")";+33 1 23 45 67 89;0"#
    );
    assert_eq!(
        csv_lines(&[&ana], "USR_DORT", Formulas::Keep)[1],
        r#"ANA;"=HYPERLINK(""http://x.example/"";""Pay"")";+33 1 23 45 67 89;0"#
    );
    // The quote counts in the known sizes: 20 characters become 21.
    let login = format!("@{}", "A".repeat(19));
    let long = item(&[("USR_NAME", &login)], true);
    let reason = check_item(&long, "USR_DORT", Formulas::Neutralise)
        .unwrap_err()
        .to_string();
    assert!(
        reason.contains("is 21 characters, with the quote that keeps a spreadsheet from running it"),
        "{reason}"
    );
    assert_eq!(check_item(&long, "USR_DORT", Formulas::Keep), Ok(()));
}

const DOCUMENTED_REPLY: &str = r#"{
    "result": [{
        "resultat": "succès",
        "message": "terminé",
        "journal": [
            "10/09/2019 11:25:32 Ouverture de la société C:\\ProgramData\\Gestimum\\DEMO.Gestimum",
            "10/09/2019 11:25:38 Société C:\\ProgramData\\Gestimum\\DEMO.Gestimum ouverte",
            "10/09/2019 11:25:38 Lancement de la tâche ImporterUtilisateurs",
            "10/09/2019 11:25:38 L'import a été effectué avec succès.",
            "10/09/2019 11:25:38 Nombre de lignes importées : 3",
            "10/09/2019 11:25:38 Nombre de lignes non importées : 0",
            "10/09/2019 11:25:38 Tâche ImporterUtilisateurs terminée",
            "10/09/2019 11:25:38 Fermeture de la société C:\\ProgramData\\Gestimum\\DEMO.Gestimum"
        ],
        "statistiques": {"nombre_lignes_importées": "3", "nombre_lignes_non_importées": "0"}
    }]
}"#;

#[test]
fn the_documented_reply_is_read_and_its_journal_is_routine() {
    let reply = parse_reply(DOCUMENTED_REPLY).unwrap();
    assert!(reply.success);
    assert_eq!(reply.message, "terminé");
    assert_eq!(reply.journal.len(), 8);
    assert_eq!((reply.imported, reply.not_imported), (Some(3), Some(0)));
    assert_eq!(journal_details(&reply.journal), Vec::<String>::new());
    assert_eq!(check_counts(3, &reply), CountCheck::Consistent);
    assert!(matches!(check_counts(4, &reply), CountCheck::Short(_)));
}

#[test]
fn short_counts_and_refusals_are_told_apart() {
    let reply = parse_reply(
        r#"{"result":[{"resultat":"succès","journal":[
            "10/09/2019 11:25:38 Ligne 2 : USR_GROUPE trop long",
            "10/09/2019 11:25:38 Nombre de lignes importées : 1"],
            "statistiques":{"nombre_lignes_importées":1,"nombre_lignes_non_importées":"1"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        check_counts(2, &reply),
        CountCheck::Short("2 lines sent, 1 imported, 1 not imported".into())
    );
    assert_eq!(
        journal_details(&reply.journal),
        ["Ligne 2 : USR_GROUPE trop long"]
    );

    let refused =
        parse_reply(r#"{"result":[{"resultat":"échec","message":"Mot de passe incorrect"}]}"#)
            .unwrap();
    assert!(!refused.success);
    assert_eq!(refused.refusal(), "Mot de passe incorrect");
    assert!(matches!(check_counts(1, &refused), CountCheck::Short(_)));

    assert!(parse_reply("{\"result\":[{\"resultat\":").is_err());
    assert!(parse_reply("{}").is_err());
    assert!(
        parse_reply(r#"{"result":[{"statistiques":{"nombre_lignes_importées":"trois"}}]}"#)
            .is_err()
    );
}

