//! Canonical records: what every source format is mapped onto.
//!
//! A record keeps its values in one string with end offsets, aligned to a
//! [`Schema`] shared by every record of a file. One million users with ~40
//! fields each would otherwise cost forty million small allocations.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;

/// What a source file holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Users,
    Orgs,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Users => "users",
            RecordKind::Orgs => "orgs",
        })
    }
}

macro_rules! fields {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A canonical field (README, *How files are read*). Free `custom.*`
        /// fields are [`FieldName::Custom`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field { $($variant),+ }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$variant),+];

            /// The canonical name, as used in `[source.columns]` and `[target.fields]`.
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name),+ }
            }

            pub fn from_name(name: &str) -> Option<Field> {
                match name { $($name => Some(Field::$variant),)+ _ => None }
            }
        }
    };
}

fields! {
    ExtId => "ext_id",
    Login => "login",
    Password => "password",
    FirstName => "first_name",
    LastName => "last_name",
    MiddleName => "middle_name",
    Title => "title",
    Email => "email",
    Phone => "phone",
    Mobile => "mobile",
    OrgExtId => "org_ext_id",
    ManagerExtId => "manager_ext_id",
    AltManagerExtId => "alt_manager_ext_id",
    Disabled => "disabled",
    BirthDate => "birth_date",
    ActivationDate => "activation_date",
    ExpirationDate => "expiration_date",
    Culture => "culture",
    Gender => "gender",
    City => "city",
    Address1 => "address1",
    Address2 => "address2",
    Zip => "zip",
    Country => "country",
    Department => "department",
    Position => "position",
    Roles => "roles",
    Audiences => "audiences",
    Groups => "groups",
    Entities => "entities",
    HourlyCost => "hourly_cost",
    Label => "label",
    ParentExtId => "parent_ext_id",
    Description => "description",
    InstitutionCode => "institution_code",
    Budget => "budget",
}

impl Field {
    /// Fields that make sense for a kind of record.
    pub fn applies_to(self, kind: RecordKind) -> bool {
        use Field::*;
        match kind {
            RecordKind::Users => !matches!(
                self,
                Label | ParentExtId | Description | InstitutionCode | Budget
            ),
            RecordKind::Orgs => matches!(
                self,
                ExtId
                    | Label
                    | ParentExtId
                    | Disabled
                    | Description
                    | Culture
                    | Address1
                    | Address2
                    | Zip
                    | City
                    | Country
                    | InstitutionCode
                    | Budget
            ),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A canonical field or a free `custom.NAME` one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldName {
    Known(Field),
    Custom(Box<str>),
}

impl FieldName {
    /// Parses `ext_id`, `custom.badge`...; `None` for anything else.
    pub fn parse(name: &str) -> Option<FieldName> {
        if let Some(custom) = name.strip_prefix("custom.") {
            let valid = !custom.is_empty()
                && custom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            return valid.then(|| FieldName::Custom(custom.into()));
        }
        Field::from_name(name).map(FieldName::Known)
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldName::Known(field) => f.write_str(field.name()),
            FieldName::Custom(name) => write!(f, "custom.{name}"),
        }
    }
}

/// Which field each value of a record is; one per file, shared by its records.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    kind: RecordKind,
    key: Field,
    fields: Vec<FieldName>,
    /// Position of each canonical field in `fields`, indexed by `Field as usize`.
    known: Vec<Option<usize>>,
}

impl Schema {
    pub fn new(kind: RecordKind, key: Field, fields: Vec<FieldName>) -> Schema {
        let mut known = vec![None; Field::ALL.len()];
        for (i, name) in fields.iter().enumerate() {
            if let FieldName::Known(field) = name {
                known[*field as usize] = Some(i);
            }
        }
        Schema {
            kind,
            key,
            fields,
            known,
        }
    }

    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// The field records are keyed by (the source's `key`).
    pub fn key(&self) -> Field {
        self.key
    }

    pub fn fields(&self) -> &[FieldName] {
        &self.fields
    }

    pub fn position(&self, field: Field) -> Option<usize> {
        self.known.get(field as usize).copied().flatten()
    }

    pub fn has(&self, field: Field) -> bool {
        self.position(field).is_some()
    }
}

/// One valid, normalised row: dates are ISO `YYYY-MM-DD`, flags `0`/`1`,
/// lists `||`-joined, numbers with a `.` decimal point, text trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The line of the source file where the row starts.
    pub line: u64,
    schema: Arc<Schema>,
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Record {
    /// `text` holds the values back to back; `ends[i]` is where value `i`
    /// (aligned to `schema.fields()`) ends.
    pub(crate) fn from_parts(line: u64, schema: Arc<Schema>, text: &str, ends: &[u32]) -> Record {
        Record {
            line,
            schema,
            text: text.into(),
            ends: ends.into(),
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The values back to back and where each ends (see [`Record::from_parts`]).
    pub(crate) fn parts(&self) -> (&str, &[u32]) {
        (&self.text, &self.ends)
    }

    /// The values back to back and their ends, without the value at
    /// `left_out` (what the store keeps: a password is never stored).
    pub(crate) fn parts_without(&self, left_out: Option<usize>) -> (String, Vec<u32>) {
        let Some(left_out) = left_out else {
            return (self.text.to_string(), self.ends.to_vec());
        };
        let mut text = String::with_capacity(self.text.len());
        let mut ends = Vec::with_capacity(self.ends.len());
        for index in (0..self.ends.len()).filter(|&index| index != left_out) {
            text.push_str(self.value_at(index));
            ends.push(text.len() as u32);
        }
        (text, ends)
    }

    pub fn kind(&self) -> RecordKind {
        self.schema.kind
    }

    fn value_at(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        let end = self.ends[index] as usize;
        self.text.get(start..end).unwrap_or("")
    }

    /// The value of a field; `None` when the file has no such column or the cell is empty.
    pub fn get(&self, field: Field) -> Option<&str> {
        let value = self.value_at(self.schema.position(field)?);
        (!value.is_empty()).then_some(value)
    }

    /// The value of a `custom.NAME` field.
    pub fn custom(&self, name: &str) -> Option<&str> {
        let index = self
            .schema
            .fields
            .iter()
            .position(|f| matches!(f, FieldName::Custom(n) if &**n == name))?;
        let value = self.value_at(index);
        (!value.is_empty()).then_some(value)
    }

    /// The record's key (its `ext_id`, or its `login` for a source keyed by login).
    pub fn key(&self) -> &str {
        self.get(self.schema.key).unwrap_or("")
    }

    pub fn disabled(&self) -> bool {
        self.get(Field::Disabled) == Some("1")
    }

    pub fn date(&self, field: Field) -> Option<NaiveDate> {
        super::values::parse_iso_date(self.get(field)?)
    }

    /// The items of a `||` list field.
    pub fn list(&self, field: Field) -> impl Iterator<Item = &str> {
        self.get(field).into_iter().flat_map(|v| v.split("||"))
    }

    /// Every field with a value, in column order.
    pub fn iter(&self) -> impl Iterator<Item = (&FieldName, &str)> {
        self.schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f, self.value_at(i)))
            .filter(|(_, v)| !v.is_empty())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"line", &self.line);
        for (name, value) in self.iter() {
            if *name == FieldName::Known(Field::Password) {
                map.entry(&name.to_string(), &"***");
            } else {
                map.entry(&name.to_string(), &value);
            }
        }
        map.finish()
    }
}
