//! WBT Manager's import format (its vendor's import specification), defined once: its columns in the
//! format's order, the canonical field each holds, whether a file must have
//! it, and its size. The ingest `wbt` preset reads files with it, the
//! `wbt-file` connector writes them with it and maps its fields from it.

use super::columns::ValueType;
use super::record::{Field, FieldName, RecordKind};

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Known(Field),
    /// One of WBT's free fields, kept as `custom.NAME`.
    Free(&'static str),
}

/// One column of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub header: &'static str,
    pub holds: Holds,
    /// A file must have this column, with a value on every row.
    pub required: bool,
    pub max_chars: Option<usize>,
    pub value_type: ValueType,
}

impl Column {
    /// The canonical field the column holds.
    pub fn field(&self) -> FieldName {
        match self.holds {
            Holds::Known(field) => FieldName::Known(field),
            Holds::Free(name) => FieldName::Custom(name.into()),
        }
    }
}

const fn known(
    header: &'static str,
    field: Field,
    required: bool,
    max_chars: Option<usize>,
    value_type: ValueType,
) -> Column {
    Column {
        header,
        holds: Holds::Known(field),
        required,
        max_chars,
        value_type,
    }
}

/// `user_udtfN`, read into `custom.udtfN`.
const fn free(header: &'static str, name: &'static str) -> Column {
    Column {
        header,
        holds: Holds::Free(name),
        required: false,
        max_chars: Some(255),
        value_type: ValueType::Text,
    }
}

/// The user import's columns, in the format's order: 25 named columns and
/// WBT's ten free fields.
pub const USERS: &[Column] = {
    use Field::*;
    use ValueType::*;
    &[
        known("user_lname", LastName, false, Some(120), Text),
        known("user_fname", FirstName, true, Some(120), Text),
        known("user_tname", Title, false, Some(50), Text),
        known("user_login", Login, true, Some(120), Text),
        // Optional, unlike WBT's own rule: HR exports rarely carry passwords.
        known("user_password", Password, false, Some(120), Text),
        // May be empty: the user then sits at the top of the hierarchy.
        known("org_extid", OrgExtId, false, Some(255), Text),
        known(
            "user_email",
            Field::Email,
            false,
            Some(255),
            ValueType::Email,
        ),
        known("user_extid", ExtId, false, Some(255), Text),
        known("user_disable", Disabled, false, None, Flag),
        known(
            "user_culture",
            Field::Culture,
            false,
            None,
            ValueType::Culture,
        ),
        known("birth_date", BirthDate, false, None, Date),
        known("user_activation_date", ActivationDate, false, None, Date),
        known("user_expiration_date", ExpirationDate, false, None, Date),
        known("user_manager_extid", ManagerExtId, false, Some(255), Text),
        known(
            "user_alternate_manager_extid",
            AltManagerExtId,
            false,
            Some(255),
            Text,
        ),
        known("user_address1", Address1, false, Some(255), Text),
        known("user_address2", Address2, false, Some(255), Text),
        known("user_zip", Zip, false, Some(255), Text),
        known("user_city", City, false, Some(255), Text),
        known("user_country", Country, false, Some(255), Text),
        known("user_phone", Phone, false, Some(255), Text),
        known("user_cellphone", Mobile, false, Some(255), Text),
        known("user_hourly_cost", HourlyCost, false, None, Float),
        free("user_udtf1", "udtf1"),
        free("user_udtf2", "udtf2"),
        free("user_udtf3", "udtf3"),
        free("user_udtf4", "udtf4"),
        free("user_udtf5", "udtf5"),
        free("user_udtf6", "udtf6"),
        free("user_udtf7", "udtf7"),
        free("user_udtf8", "udtf8"),
        free("user_udtf9", "udtf9"),
        free("user_udtf10", "udtf10"),
        known("user_audiences", Audiences, false, Some(255), List),
        known("user_roles", Roles, false, Some(255), List),
    ]
};

/// The organisation import's columns, in the format's order.
pub const ORGS: &[Column] = {
    use Field::*;
    use ValueType::*;
    &[
        known("org_label", Label, true, Some(255), Text),
        known("org_extid", ExtId, true, Some(255), Text),
        known("org_parentextid", ParentExtId, false, Some(255), Text),
        known("org_disable", Disabled, false, None, Flag),
        // nvarchar(max)
        known("org_description", Description, false, None, Text),
        known(
            "org_culture",
            Field::Culture,
            false,
            None,
            ValueType::Culture,
        ),
        known("org_address1", Address1, false, Some(255), Text),
        known("org_address2", Address2, false, Some(255), Text),
        known("org_zip", Zip, false, Some(255), Text),
        known("org_city", City, false, Some(255), Text),
        known("org_country", Country, false, Some(255), Text),
        known(
            "org_institution_code",
            InstitutionCode,
            false,
            Some(255),
            Text,
        ),
        known("org_budget", Budget, false, None, Integer),
    ]
};

/// The columns of a kind's import file.
pub fn columns(kind: RecordKind) -> &'static [Column] {
    match kind {
        RecordKind::Users => USERS,
        RecordKind::Orgs => ORGS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_has_the_documented_columns() {
        assert_eq!(USERS.len(), 35);
        assert_eq!(ORGS.len(), 13);
        for columns in [USERS, ORGS] {
            let mut headers: Vec<_> = columns.iter().map(|c| c.header).collect();
            headers.sort();
            headers.dedup();
            assert_eq!(headers.len(), columns.len(), "a header appears twice");
        }
        let dates: Vec<_> = USERS
            .iter()
            .filter(|c| c.value_type == ValueType::Date)
            .map(|c| c.header)
            .collect();
        assert_eq!(
            dates,
            ["birth_date", "user_activation_date", "user_expiration_date"]
        );
    }
}
