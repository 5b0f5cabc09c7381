//! The import's column labels. Pleasanter names the CSV columns in the
//! language of the API key's user (not the tenant's), and drops a header
//! that is none of its labels without an error: a misspelt name loses that
//! field silently, so the mapped names are checked against the labels known
//! here, English and Japanese.

use std::fmt;

/// The language of the API key's user, as its labels tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Japanese,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::English => "English",
            Language::Japanese => "Japanese",
        })
    }
}

/// A column of the user import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    LoginId,
    Name,
    UserCode,
    MailAddress,
    DeptCode,
    Disabled,
    Body,
    Comments,
}

const COLUMNS: [Column; 8] = [
    Column::LoginId,
    Column::Name,
    Column::UserCode,
    Column::MailAddress,
    Column::DeptCode,
    Column::Disabled,
    Column::Body,
    Column::Comments,
];

impl Column {
    pub fn label(self, language: Language) -> &'static str {
        let (english, japanese) = match self {
            Column::LoginId => ("Login ID", "ログインID"),
            Column::Name => ("Name", "名前"),
            Column::UserCode => ("User code", "ユーザコード"),
            Column::MailAddress => ("Email address", "メールアドレス"),
            Column::DeptCode => ("Department code", "組織コード"),
            Column::Disabled => ("Disabled", "無効"),
            Column::Body => ("Body", "説明"),
            Column::Comments => ("Comments", "コメント"),
        };
        match language {
            Language::English => english,
            Language::Japanese => japanese,
        }
    }

    /// Its name in the API (`/api/users/get` filters, `/api/users/{id}/update`).
    pub fn api_name(self) -> &'static str {
        match self {
            Column::LoginId => "LoginId",
            Column::Name => "Name",
            Column::UserCode => "UserCode",
            Column::MailAddress => "MailAddress",
            Column::DeptCode => "DeptCode",
            Column::Disabled => "Disabled",
            Column::Body => "Body",
            Column::Comments => "Comments",
        }
    }

    /// The longest value Pleasanter's database takes, in UTF-16 units (the
    /// way .NET counts); longer fails the row with a server exception.
    pub fn limit(self) -> Option<usize> {
        match self {
            Column::LoginId => Some(256),
            Column::Name => Some(128),
            Column::UserCode => Some(32),
            // For one address: a user has one here.
            Column::MailAddress => Some(2048),
            _ => None,
        }
    }

    /// The column a label names, and the label's language.
    pub fn of_label(label: &str) -> Option<(Column, Language)> {
        [Language::English, Language::Japanese]
            .into_iter()
            .flat_map(|language| COLUMNS.map(|column| (column, language)))
            .find(|(column, language)| column.label(*language) == label)
    }
}

/// Every label of a language but `Disabled` (which the connector sends itself), as a list for messages.
pub fn labels(language: Language) -> String {
    COLUMNS
        .iter()
        .filter(|c| **c != Column::Disabled)
        .map(|c| c.label(language))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The import's header for a target: its labels' language and the columns
/// sent, the same for every batch (an empty cell clears a value, so a
/// header that varied would leave stale values behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub language: Language,
    /// The login's label first, the other mapped labels in name order, `Disabled` last.
    pub header: Vec<String>,
}

impl Layout {
    /// The label of the column the import matches users on.
    pub fn login(&self) -> &'static str {
        Column::LoginId.label(self.language)
    }

    pub fn disabled(&self) -> &'static str {
        Column::Disabled.label(self.language)
    }
}

/// The layout for the mapped target field names, or every problem with them.
pub fn layout<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Layout, Vec<String>> {
    let mut problems = Vec::new();
    let mut mapped: Vec<(&str, Column, Language)> = Vec::new();
    for name in names {
        match Column::of_label(name) {
            None => problems.push(format!(
                "{name:?} is not a label of Pleasanter's user import, which drops such a column \
                 without an error: the labels are {} (English) or {} (Japanese), those of the \
                 API key user's language",
                labels(Language::English),
                labels(Language::Japanese)
            )),
            Some((Column::Disabled, _)) => problems.push(format!(
                "{name:?} carries block and unblock, which rostersync sends itself: \
                 remove it from [target.fields]"
            )),
            Some((column, language)) => mapped.push((name, column, language)),
        }
    }
    let language = mapped.first().map_or(Language::English, |m| m.2);
    if mapped.iter().any(|m| m.2 != language) {
        problems.push(
            "[target.fields] mixes English and Japanese labels: the import takes those of the \
             API key user's language alone"
                .to_string(),
        );
    }
    for required in [Column::LoginId, Column::Name] {
        if !mapped.iter().any(|m| m.1 == required) {
            problems.push(format!(
                "Pleasanter's import needs the {:?} column: map it in [target.fields]",
                required.label(language)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let login = Column::LoginId.label(language);
    let mut others: Vec<&str> = mapped
        .iter()
        .map(|m| m.0)
        .filter(|name| *name != login)
        .collect();
    others.sort_unstable();
    let header = std::iter::once(login)
        .chain(others)
        .chain(std::iter::once(Column::Disabled.label(language)))
        .map(str::to_string)
        .collect();
    Ok(Layout { language, header })
}

/// The language a message of Pleasanter is written in, when it can be told.
pub fn language_of(message: &str) -> Option<Language> {
    let japanese = |c: char| matches!(c, '\u{3040}'..='\u{30FF}' | '\u{4E00}'..='\u{9FFF}');
    if message.chars().any(japanese) {
        Some(Language::Japanese)
    } else if message.trim() == "Please select a file." {
        Some(Language::English)
    } else {
        None
    }
}
