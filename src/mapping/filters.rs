//! The environment templates and scope expressions are compiled in: Jinja's
//! built-in filters and tests (`lower`, `upper`, `title`, `trim`, `replace`,
//! `default`, `in`, `endingwith`…) and ours (`ascii`, `truncate`, `date`).

use std::fmt::Write;

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// Instructions one evaluation may take: a loop cannot hold a plan up.
const FUEL: u64 = 50_000;

pub(super) fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    // Values go to applications, not to HTML pages.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    env.add_filter("ascii", ascii);
    env.add_filter("truncate", truncate);
    env.add_filter("date", date);
    env
}

/// The string a filter works on; a missing value is an undefined error
/// (not "not a string"), as Jinja's own filters say it.
fn text(value: &Value) -> Result<String, Error> {
    if value.is_undefined() || value.is_none() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    })
}

/// Accents and other letters folded to ASCII: "Zoë Åberg" → "Zoe Aberg".
fn ascii(value: &Value) -> Result<String, Error> {
    Ok(deunicode::deunicode(&text(value)?))
}

/// The first `length` characters (not bytes: no letter is cut in two).
fn truncate(value: &Value, length: usize) -> Result<String, Error> {
    Ok(text(value)?.chars().take(length).collect())
}

/// An ISO date (`YYYY-MM-DD`, as records hold dates) in a strftime `format`
/// (`%d/%m/%Y`).
fn date(value: &Value, format: &str) -> Result<String, Error> {
    let value = text(value)?;
    let day = crate::ingest::values::parse_iso_date(&value).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("date: {value:?} is not a date (YYYY-MM-DD)"),
        )
    })?;
    let mut text = String::new();
    // chrono reports a bad format by failing the write (it would panic in to_string).
    write!(text, "{}", day.format(format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("date: {format:?} is not a date format (strftime, e.g. %d/%m/%Y)"),
        )
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str) -> Result<String, Error> {
        environment(UndefinedBehavior::Strict).render_str(
            template,
            minijinja::context! { name => "Zoë Åberg", day => "2026-03-09" },
        )
    }

    #[test]
    fn ascii_folds_accents() {
        assert_eq!(render("{{ name | ascii }}").unwrap(), "Zoe Aberg");
        assert_eq!(
            render("{{ name | ascii | lower | replace(' ', '.') }}").unwrap(),
            "zoe.aberg"
        );
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(render("{{ name | truncate(3) }}").unwrap(), "Zoë");
        assert_eq!(render("{{ name | truncate(50) }}").unwrap(), "Zoë Åberg");
    }

    #[test]
    fn dates_are_formatted_and_bad_formats_are_errors() {
        assert_eq!(
            render("{{ day | date('%d/%m/%Y') }}").unwrap(),
            "09/03/2026"
        );
        let bad = render("{{ day | date('%Q') }}").unwrap_err();
        assert!(bad.to_string().contains("not a date format"), "{bad}");
        let not_a_date = render("{{ name | date('%Y') }}").unwrap_err();
        assert!(
            not_a_date.to_string().contains("is not a date"),
            "{not_a_date}"
        );
    }

    #[test]
    fn undefined_is_an_error_unless_defaulted() {
        assert!(render("{{ nobody }}").is_err());
        let folded = render("{{ nobody | ascii }}").unwrap_err();
        assert_eq!(folded.kind(), ErrorKind::UndefinedError);
        assert_eq!(render("{{ nobody | default('x') }}").unwrap(), "x");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let error = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        )
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::OutOfFuel);
    }
}
