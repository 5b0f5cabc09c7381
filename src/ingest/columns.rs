//! Column presets: which header maps to which canonical field, and the rules
//! each value must follow.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::record::{Field, FieldName, RecordKind};

/// The `format` of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// WBT Manager's import format (`ingest::wbt`).
    Wbt,
    /// Collaborator's CSV layout (its JSON field names as headers).
    Collaborator,
    /// `[source.columns]`: canonical field name → header.
    Custom(BTreeMap<String, String>),
}

impl Format {
    /// The date format a preset's files use, when the source does not set `date_format`.
    pub fn default_date_format(&self) -> &'static str {
        match self {
            Format::Wbt => "%Y/%m/%d",
            Format::Collaborator => "%d.%m.%Y",
            Format::Custom(_) => "%Y-%m-%d",
        }
    }
}

/// What a value must look like, and how it is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    /// In the source's date format; stored as `YYYY-MM-DD`.
    Date,
    /// `0` or `1` (empty = `0`).
    Flag,
    Email,
    /// `fr` or `fr-FR`; stored as `fr-FR`.
    Culture,
    /// A decimal number; a `,` decimal separator is accepted (French Excel).
    Float,
    Integer,
    /// `||`-separated identifiers.
    List,
    /// `M`, `F`, `male`, `female`; stored as `M` or `F`.
    Gender,
    /// Collaborator's `gender`: `0` male, `1` female.
    GenderDigit,
    /// Collaborator's `status`: `0` working, `1` dismissed, `2`/`3` on leave (still active).
    EmploymentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub header: Cow<'static, str>,
    pub field: FieldName,
    /// The file must have this column.
    pub column_required: bool,
    /// Every row must have a value in it.
    pub value_required: bool,
    pub max_chars: Option<usize>,
    pub value_type: ValueType,
}

/// Values of custom sources get a generous bound: no target stores a 10 MB name.
const CUSTOM_MAX_CHARS: usize = 4000;

const COLLABORATOR_USERS: &[(&str, Field, bool, Option<usize>, ValueType)] = {
    use Field::*;
    use ValueType::*;
    &[
        ("uid", ExtId, false, None, Text),
        ("secondname", LastName, false, None, Text),
        ("firstname", FirstName, false, None, Text),
        ("patronymic", MiddleName, false, None, Text),
        ("login", Login, true, None, Text),
        ("email", Field::Email, false, None, ValueType::Email),
        ("password", Password, false, None, Text),
        ("birth_date", BirthDate, false, None, Date),
        ("gender", Field::Gender, false, None, GenderDigit),
        ("city", City, false, None, Text),
        ("department", Department, false, None, Text),
        ("position", Position, false, None, Text),
        ("phone", Phone, false, None, Text),
        ("status", Disabled, false, None, EmploymentStatus),
        ("structure_uid", OrgExtId, false, None, Text),
        ("manager_uid", ManagerExtId, false, None, Text),
        ("role_id", Roles, false, None, List),
    ]
};

/// Collaborator's free columns, kept as `custom.NAME`.
const COLLABORATOR_FREE_FIELDS: &[&str] = &[
    "tags",
    "user_field1",
    "user_field2",
    "user_field3",
    "user_field4",
    "user_field5",
];

const COLLABORATOR_ORGS: &[(&str, Field, bool, Option<usize>, ValueType)] = &[
    ("uid", Field::ExtId, true, None, ValueType::Text),
    (
        "parent_uid",
        Field::ParentExtId,
        false,
        None,
        ValueType::Text,
    ),
    ("title", Field::Label, true, None, ValueType::Text),
];

/// The columns a source's files are read with. The key column is always required.
pub fn column_specs(format: &Format, kind: RecordKind, key: Field) -> Vec<ColumnSpec> {
    let mut specs: Vec<ColumnSpec> = match (format, kind) {
        (Format::Wbt, kind) => super::wbt::columns(kind)
            .iter()
            .map(|column| ColumnSpec {
                header: Cow::Borrowed(column.header),
                field: column.field(),
                column_required: column.required,
                value_required: column.required,
                max_chars: column.max_chars,
                value_type: column.value_type,
            })
            .collect(),
        (Format::Collaborator, RecordKind::Users) => {
            let mut specs = preset(COLLABORATOR_USERS);
            specs.extend(
                COLLABORATOR_FREE_FIELDS
                    .iter()
                    .map(|name| free_field(name.to_string(), name.to_string(), None)),
            );
            specs
        }
        (Format::Collaborator, RecordKind::Orgs) => preset(COLLABORATOR_ORGS),
        (Format::Custom(columns), _) => custom(columns),
    };
    for spec in &mut specs {
        if spec.field == FieldName::Known(key) {
            spec.column_required = true;
            spec.value_required = true;
        }
    }
    specs
}

fn preset(table: &[(&'static str, Field, bool, Option<usize>, ValueType)]) -> Vec<ColumnSpec> {
    table
        .iter()
        .map(
            |&(header, field, required, max_chars, value_type)| ColumnSpec {
                header: Cow::Borrowed(header),
                field: FieldName::Known(field),
                column_required: required,
                value_required: required,
                max_chars,
                value_type,
            },
        )
        .collect()
}

fn free_field(header: String, name: String, max_chars: Option<usize>) -> ColumnSpec {
    ColumnSpec {
        header: Cow::Owned(header),
        field: FieldName::Custom(name.into()),
        column_required: false,
        value_required: false,
        max_chars,
        value_type: ValueType::Text,
    }
}

/// Every configured column must be in the file (the administrator said it is).
/// Names that are not fields are refused earlier, by the config check.
fn custom(columns: &BTreeMap<String, String>) -> Vec<ColumnSpec> {
    columns
        .iter()
        .filter_map(|(name, header)| {
            let field = FieldName::parse(name)?;
            let value_type = match &field {
                FieldName::Known(field) => natural_type(*field),
                FieldName::Custom(_) => ValueType::Text,
            };
            let max_chars = match field {
                FieldName::Known(Field::Description) => None,
                _ => Some(CUSTOM_MAX_CHARS),
            };
            Some(ColumnSpec {
                header: Cow::Owned(header.clone()),
                field,
                column_required: true,
                value_required: false,
                max_chars,
                value_type,
            })
        })
        .collect()
}

/// The type a canonical field has when a custom source maps it.
pub fn natural_type(field: Field) -> ValueType {
    use Field::*;
    match field {
        Email => ValueType::Email,
        Disabled => ValueType::Flag,
        BirthDate | ActivationDate | ExpirationDate => ValueType::Date,
        Culture => ValueType::Culture,
        Roles | Audiences | Groups | Entities => ValueType::List,
        HourlyCost => ValueType::Float,
        Budget => ValueType::Integer,
        Gender => ValueType::Gender,
        _ => ValueType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wbt_users_has_every_column_of_the_format() {
        let specs = column_specs(&Format::Wbt, RecordKind::Users, Field::ExtId);
        // 25 named columns and 10 free fields, as the WBT format defines.
        assert_eq!(specs.len(), 35);
        let extid = specs.iter().find(|s| s.header == "user_extid").unwrap();
        assert!(extid.column_required && extid.value_required);
        let password = specs.iter().find(|s| s.header == "user_password").unwrap();
        assert!(!password.column_required);
    }

    #[test]
    fn login_key_leaves_ext_id_optional() {
        let specs = column_specs(&Format::Wbt, RecordKind::Users, Field::Login);
        let extid = specs.iter().find(|s| s.header == "user_extid").unwrap();
        assert!(!extid.column_required);
    }

    #[test]
    fn custom_columns_take_the_natural_type() {
        let columns = BTreeMap::from([
            ("ext_id".to_string(), "Matricule".to_string()),
            ("birth_date".to_string(), "Né le".to_string()),
            ("custom.badge".to_string(), "Badge".to_string()),
        ]);
        let specs = column_specs(&Format::Custom(columns), RecordKind::Users, Field::ExtId);
        assert_eq!(specs.len(), 3);
        assert!(specs.iter().all(|s| s.column_required));
        let birth = specs.iter().find(|s| s.header == "Né le").unwrap();
        assert_eq!(birth.value_type, ValueType::Date);
    }
}
