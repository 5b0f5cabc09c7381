//! How many of a source's records a file changes, field by field: the
//! figures of the `max_change_percent` safety rule (a shifted column in an
//! export rewrites one field for everyone with values that pass every
//! validation). Counted while the snapshot is merged, so no extra pass.

use std::collections::BTreeMap;

use crate::ingest::record::{Field, FieldName, Record};
use crate::safety::{ChangeSample, FieldShare};

/// How many old → new pairs a held plan shows per field.
pub const SAMPLE_SIZE: usize = 3;

/// The source's records seen, and per field how many the file changes.
#[derive(Debug, Default)]
pub struct FieldTally {
    /// The source's records before this file (those of its last accepted file).
    records: u64,
    fields: BTreeMap<FieldName, Changed>,
}

#[derive(Debug, Default)]
struct Changed {
    count: u64,
    sample: Vec<ChangeSample>,
}

impl FieldTally {
    /// One record the source held before this file.
    pub fn held_before(&mut self) {
        self.records += 1;
    }

    /// A record the file holds again, with different values: each field
    /// both versions have a column for and whose value differs counts once.
    /// A column added or dropped is not a change of its values.
    pub fn compare(&mut self, old: &Record, new: &Record) {
        let key = new.schema().key();
        for name in new.schema().fields() {
            // The password is never stored (nor shown), the key cannot change,
            // and `disabled` is a block or an unblock, which the block rules count.
            let left_out = [Field::Password, Field::Disabled, key];
            if left_out
                .iter()
                .any(|field| *name == FieldName::Known(*field))
            {
                continue;
            }
            if !old.schema().fields().contains(name) {
                continue;
            }
            let (before, after) = (value(old, name), value(new, name));
            if before == after {
                continue;
            }
            let changed = self.fields.entry(name.clone()).or_default();
            changed.count += 1;
            if changed.sample.len() < SAMPLE_SIZE {
                changed.sample.push(ChangeSample {
                    ext_id: new.key().to_string(),
                    old: before.map(str::to_string),
                    new: after.map(str::to_string),
                });
            }
        }
    }

    /// Per field changed, its count over the records the source held.
    pub fn shares(self) -> Vec<FieldShare> {
        let records = self.records;
        self.fields
            .into_iter()
            .map(|(field, changed)| FieldShare {
                field: field.to_string(),
                changed: changed.count,
                records,
                sample: changed.sample,
            })
            .collect()
    }
}

fn value<'r>(record: &'r Record, name: &FieldName) -> Option<&'r str> {
    match name {
        FieldName::Known(field) => record.get(*field),
        FieldName::Custom(custom) => record.custom(custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::{RecordKind, Schema};
    use std::sync::Arc;

    fn schema(fields: &[&str]) -> Arc<Schema> {
        Arc::new(Schema::new(
            RecordKind::Users,
            Field::ExtId,
            fields
                .iter()
                .map(|f| FieldName::parse(f).unwrap())
                .collect(),
        ))
    }

    fn record(schema: &Arc<Schema>, values: &[&str]) -> Record {
        let mut text = String::new();
        let mut ends = Vec::new();
        for value in values {
            text.push_str(value);
            ends.push(text.len() as u32);
        }
        Record::from_parts(1, Arc::clone(schema), &text, &ends)
    }

    #[test]
    fn counts_each_changed_field_once_per_record_with_a_sample() {
        let layout = schema(&["ext_id", "first_name", "last_name", "password", "disabled"]);
        let mut tally = FieldTally::default();
        for i in 0..5 {
            tally.held_before();
            let id = format!("u{i}");
            let old = record(&layout, &[&id, "Ada", "Lovelace", "old-secret", "0"]);
            let new = record(&layout, &[&id, "Lovelace", "Ada", "new-secret", "1"]);
            tally.compare(&old, &new);
        }
        let shares = tally.shares();
        let fields: Vec<(&str, u64, u64, usize)> = shares
            .iter()
            .map(|s| (s.field.as_str(), s.changed, s.records, s.sample.len()))
            .collect();
        // The password changed too, but is neither counted nor shown; the
        // disabled flag is left to the block rules.
        assert_eq!(
            fields,
            [("first_name", 5, 5, 3), ("last_name", 5, 5, 3)],
            "{shares:?}"
        );
        assert_eq!(
            shares[0].sample[0],
            ChangeSample {
                ext_id: "u0".into(),
                old: Some("Ada".into()),
                new: Some("Lovelace".into()),
            }
        );
    }

    #[test]
    fn a_column_added_is_not_a_change_but_a_value_emptied_is() {
        let before = schema(&["ext_id", "email"]);
        let after = schema(&["ext_id", "email", "custom.badge"]);
        let mut tally = FieldTally::default();
        tally.held_before();
        tally.compare(
            &record(&before, &["u1", "a@x.example"]),
            &record(&after, &["u1", "", "B-1"]),
        );
        let shares = tally.shares();
        assert_eq!(shares.len(), 1, "{shares:?}");
        assert_eq!(
            (shares[0].field.as_str(), &shares[0].sample[0].new),
            ("email", &None)
        );
    }
}
