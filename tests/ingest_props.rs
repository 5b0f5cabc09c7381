//! Property tests: whatever the bytes, ingest gives a verdict and never
//! panics; valid rows written by a CSV writer come back value for value.

use proptest::prelude::*;

use rostersync::ingest::record::{Field, RecordKind};
use rostersync::ingest::{Ingested, Parallelism, SourceSpec, Verdict, ingest, ingest_with};

/// What must hold of any outcome.
fn consistent(outcome: &Ingested) {
    match &outcome.verdict {
        Verdict::Accepted => {
            assert_eq!(outcome.records.len() + outcome.invalid_rows, outcome.rows);
            assert_eq!(
                outcome.invalid_rows, 0,
                "a strict source accepted invalid rows"
            );
        }
        Verdict::Refused { reason } => {
            assert!(outcome.records.is_empty());
            assert!(!reason.is_empty());
            assert!(outcome.problems.iter().any(|p| p.is_error()));
        }
    }
    for problem in &outcome.problems {
        assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
    }
}

/// The same outcome, whichever way the rows were cut between threads.
fn same_outcome(a: &Ingested, b: &Ingested) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.verdict, &b.verdict);
    prop_assert_eq!(&a.records, &b.records);
    prop_assert_eq!(&a.problems, &b.problems);
    prop_assert_eq!(a.problems_not_listed, b.problems_not_listed);
    prop_assert_eq!((a.rows, a.invalid_rows), (b.rows, b.invalid_rows));
    Ok(())
}

fn chunked(workers: usize) -> Parallelism {
    Parallelism {
        workers,
        min_bytes: 0,
    }
}

/// Pieces CSV files are made of, so that random input often looks like one.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b";".to_vec()),
        Just(b",".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"|".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"sep=;\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xFF\xFE".to_vec()),
        Just(b"user_extid;user_fname;user_login\n".to_vec()),
        Just(b"org_label;org_extid;org_parentextid\n".to_vec()),
        Just(b"E1".to_vec()),
        Just(b"1990/12/31".to_vec()),
        Just(b"a@b.fr".to_vec()),
        Just(b"||".to_vec()),
        Just(b"\xE9".to_vec()),
        Just(b"\0".to_vec()),
        "[a-zA-Z0-9 ]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(token(), 0..60).prop_map(|tokens| tokens.concat())
}

fn kind() -> impl Strategy<Value = RecordKind> {
    prop_oneof![Just(RecordKind::Users), Just(RecordKind::Orgs)]
}

/// A value that is valid in any text column: no control characters, trimmed.
fn text_value() -> impl Strategy<Value = String> {
    "[A-Za-zÀ-ÿ0-9;,|\" '.-]{0,12}".prop_map(|s| s.trim().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_give_a_verdict(bytes in prop::collection::vec(any::<u8>(), 0..2048), kind in kind()) {
        consistent(&ingest(&bytes, &SourceSpec::wbt(kind)));
    }

    #[test]
    fn csv_like_bytes_give_a_verdict(bytes in csv_like(), kind in kind()) {
        consistent(&ingest(&bytes, &SourceSpec::wbt(kind)));
    }

    #[test]
    fn threads_never_change_the_outcome(
        body in csv_like(),
        header in prop::sample::select(vec![
            "user_extid;user_fname;user_login;user_address1\n",
            "org_label;org_extid;org_parentextid\n",
        ]),
        workers in 2usize..5,
    ) {
        let bytes = [header.as_bytes(), &body].concat();
        let kind = if header.starts_with("org") { RecordKind::Orgs } else { RecordKind::Users };
        let spec = SourceSpec::wbt(kind);
        let one = ingest_with(&bytes, &spec, chunked(1));
        let many = ingest_with(&bytes, &spec, chunked(workers));
        same_outcome(&one, &many)?;
    }

    #[test]
    fn threads_cut_only_between_rows(
        rows in prop::collection::vec((text_value(), "[a-z \n\r;\"]{0,12}"), 1..40),
        workers in 2usize..5,
    ) {
        let mut writer = csv::WriterBuilder::new().delimiter(b';').from_writer(Vec::new());
        writer.write_record(["user_extid", "user_login", "user_fname", "user_address1"]).unwrap();
        for (i, (first, address)) in rows.iter().enumerate() {
            let first = if first.is_empty() { "X" } else { first.as_str() };
            writer.write_record([&format!("E{i}"), &format!("l{i}"), first, address.trim()]).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let spec = SourceSpec::wbt(RecordKind::Users);
        let one = ingest_with(&bytes, &spec, chunked(1));
        let many = ingest_with(&bytes, &spec, chunked(workers));
        prop_assert_eq!(one.rows, rows.len());
        same_outcome(&one, &many)?;
    }

    #[test]
    fn written_rows_read_back_exactly(
        rows in prop::collection::vec((text_value(), text_value(), text_value()), 1..20),
        delimiter in prop::sample::select(vec![b';', b',', b'\t', b'|']),
        crlf in any::<bool>(),
        always_quote in any::<bool>(),
    ) {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .quote_style(if always_quote { csv::QuoteStyle::Always } else { csv::QuoteStyle::Necessary })
            .from_writer(Vec::new());
        writer.write_record(["user_extid", "user_login", "user_fname", "user_lname", "user_city"]).unwrap();
        for (i, (first, last, city)) in rows.iter().enumerate() {
            let first = if first.is_empty() { "X" } else { first.as_str() };
            writer.write_record([&format!("E{i}"), &format!("login{i}"), first, last, city]).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let outcome = ingest(&bytes, &SourceSpec::wbt(RecordKind::Users));
        prop_assert_eq!(&outcome.verdict, &Verdict::Accepted, "{:?}", outcome.problems);
        prop_assert_eq!(outcome.records.len(), rows.len());
        for (record, (first, last, city)) in outcome.records.iter().zip(&rows) {
            let first = if first.is_empty() { "X" } else { first.as_str() };
            prop_assert_eq!(record.get(Field::FirstName), Some(first));
            prop_assert_eq!(record.get(Field::LastName).unwrap_or(""), last.as_str());
            prop_assert_eq!(record.get(Field::City).unwrap_or(""), city.as_str());
        }
    }
}
