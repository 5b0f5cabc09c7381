//! A source's snapshot: its records as the last accepted file had them,
//! stored once for all its targets (each target's projection is computed
//! from it when pushing). Values are kept as ingest holds them, back to
//! back, with the file's column layout stored once under its own key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{StoreError, decode, encode};
use crate::ingest::record::{Field, FieldName, Record, RecordKind, Schema};

/// One record of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Its column layout, see [`SchemaId`].
    pub schema: SchemaId,
    pub text: String,
    pub ends: Vec<u32>,
    /// In the last file of a full source (always, for a delta source).
    pub present: bool,
}

/// Names a stored column layout: the first 8 bytes of the SHA-256 of its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaId(pub u64);

/// A column layout as stored under `h\0ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSchema {
    kind: RecordKind,
    key: String,
    fields: Vec<String>,
}

pub fn schema_key(id: SchemaId) -> Vec<u8> {
    let mut key = b"h\0".to_vec();
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

/// Turns records into stored ones, computing each file layout's id once.
#[derive(Default)]
pub struct Encoder {
    /// By the address of a record's shared schema.
    known: HashMap<usize, (SchemaId, Option<usize>)>,
    /// Layouts met, to store with the records.
    pub new_schemas: Vec<(SchemaId, Vec<u8>)>,
}

impl Encoder {
    /// Whether `stored` is what storing `record` (in the file) would store.
    pub fn same(&mut self, record: &Record, stored: &StoredRecord) -> Result<bool, StoreError> {
        let (schema, password) = self.layout(record)?;
        if schema != stored.schema || !stored.present {
            return Ok(false);
        }
        Ok(match password {
            None => {
                let (text, ends) = record.parts();
                text == stored.text && ends == stored.ends.as_slice()
            }
            Some(_) => {
                let (text, ends) = record.parts_without(password);
                text == stored.text && ends == stored.ends
            }
        })
    }

    pub fn encode(&mut self, record: &Record, present: bool) -> Result<StoredRecord, StoreError> {
        let (schema, password) = self.layout(record)?;
        let (text, ends) = record.parts_without(password);
        Ok(StoredRecord {
            schema,
            text,
            ends,
            present,
        })
    }

    /// The id of a record's column layout, and where its password is (never stored).
    fn layout(&mut self, record: &Record) -> Result<(SchemaId, Option<usize>), StoreError> {
        let address = record.schema() as *const Schema as usize;
        let (schema, password) = match self.known.get(&address) {
            Some(known) => *known,
            None => {
                let schema = record.schema();
                let password = schema.position(Field::Password);
                let stored = StoredSchema {
                    kind: schema.kind(),
                    key: schema.key().name().to_string(),
                    fields: schema
                        .fields()
                        .iter()
                        .filter(|field| **field != FieldName::Known(Field::Password))
                        .map(ToString::to_string)
                        .collect(),
                };
                let bytes = encode(&stored)?;
                let digest = Sha256::digest(&bytes);
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                let id = SchemaId(u64::from_be_bytes(first));
                self.new_schemas.push((id, bytes));
                self.known.insert(address, (id, password));
                (id, password)
            }
        };
        Ok((schema, password))
    }
}

/// Column layouts read back, shared by the records that use them.
#[derive(Default)]
pub struct Schemas {
    known: Mutex<HashMap<SchemaId, Arc<Schema>>>,
}

impl Schemas {
    pub fn record(&self, tree: &sled::Tree, stored: &StoredRecord) -> Result<Record, StoreError> {
        let schema = self.schema(tree, stored.schema)?;
        Ok(Record::from_parts(0, schema, &stored.text, &stored.ends))
    }

    fn schema(&self, tree: &sled::Tree, id: SchemaId) -> Result<Arc<Schema>, StoreError> {
        // The data is a cache: a panic elsewhere cannot leave it inconsistent.
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(schema) = known.get(&id) {
            return Ok(Arc::clone(schema));
        }
        let key = schema_key(id);
        let Some(bytes) = tree.get(&key)? else {
            return Err(corrupt(
                &key,
                "a snapshot record's column layout is missing",
            ));
        };
        let stored: StoredSchema = decode(&key, &bytes)?;
        let key_field =
            Field::from_name(&stored.key).ok_or_else(|| corrupt(&key, "unknown key field"))?;
        let fields = stored
            .fields
            .iter()
            .map(|name| FieldName::parse(name).ok_or_else(|| corrupt(&key, "unknown field")))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Arc::new(Schema::new(stored.kind, key_field, fields));
        known.insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        reason: reason.into(),
    }
}
