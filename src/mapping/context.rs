//! What a template sees of a record: its canonical fields with a value,
//! by name (`first_name`), and its `custom.*` fields under `custom`.
//! Only the names a template uses are looked up.

use std::collections::{BTreeMap, HashSet};

use minijinja::Value;

use crate::ingest::record::{Field, FieldName, Record, RecordKind};

/// The record fields a compiled template or expression reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Uses {
    fields: Vec<Field>,
    custom: bool,
}

impl Uses {
    /// From the names a template leaves undeclared (those it reads from
    /// the context); others (loop variables, unknown names) stay undefined.
    pub(super) fn of(names: HashSet<String>) -> Uses {
        let mut fields: Vec<Field> = names
            .iter()
            .filter_map(|name| Field::from_name(name))
            // Never seen by a template: it would end up at the target.
            .filter(|field| crate::projection::is_projectable(&FieldName::Known(*field)))
            .collect();
        fields.sort();
        Uses {
            fields,
            custom: names.contains("custom"),
        }
    }

    /// Whether records of a kind have every field read (custom fields
    /// are anyone's): a template of user fields is no organisation's.
    pub(super) fn apply_to(&self, kind: RecordKind) -> bool {
        self.fields.iter().all(|field| field.applies_to(kind))
    }

    /// The fields read that the record has no value for.
    pub(super) fn missing<'u>(&'u self, record: &Record) -> impl Iterator<Item = &'u str> {
        self.fields
            .iter()
            .filter(|field| record.get(**field).is_none())
            .map(|field| field.name())
    }

    /// The context for one record.
    pub(super) fn context(&self, record: &Record) -> Value {
        let mut map: BTreeMap<&str, Value> = self
            .fields
            .iter()
            .filter_map(|&field| Some((field.name(), Value::from(record.get(field)?))))
            .collect();
        if self.custom {
            let custom: BTreeMap<&str, Value> = record
                .iter()
                .filter_map(|(name, value)| match name {
                    FieldName::Custom(name) => Some((&**name, Value::from(value))),
                    FieldName::Known(_) => None,
                })
                .collect();
            map.insert("custom", Value::from(custom));
        }
        Value::from(map)
    }
}
