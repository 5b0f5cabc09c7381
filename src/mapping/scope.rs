//! `[target.scope]`: which records a target holds. A record is in scope
//! when it matches any `include` (or there is none) and no `exclude`.
//!
//! Expressions are lenient about missing values, unlike templates: a record
//! with no department is simply not `department in ["Sales"]`.

use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use super::context::Uses;
use super::{CompileError, compile_error, describe, filters};
use crate::config::{OutOfScope, ScopeConfig};
use crate::ingest::record::Record;

/// A target's scope, compiled.
#[derive(Debug, Clone)]
pub struct Scope {
    pub out_of_scope: OutOfScope,
    /// Each expression, as a template printing `1` when it holds.
    env: Arc<Environment<'static>>,
    include: Vec<Compiled>,
    exclude: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    /// `None`: it does not compile (`check` refuses the config), and every
    /// record is out of scope.
    uses: Option<Uses>,
}

/// An expression of `[target.scope]` that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeProblem {
    /// `include` or `exclude`, and which of them (from 0).
    pub list: &'static str,
    pub index: usize,
    pub error: CompileError,
}

impl Scope {
    /// Compiles every expression; those that do not compile are named by
    /// [`Scope::problems`].
    pub fn compile(config: &ScopeConfig) -> (Scope, Vec<ScopeProblem>) {
        let mut env = filters::environment(UndefinedBehavior::Lenient);
        let mut problems = Vec::new();
        let mut lists = [Vec::new(), Vec::new()];
        for ((list, expressions), compiled) in
            [("include", &config.include), ("exclude", &config.exclude)]
                .into_iter()
                .zip(&mut lists)
        {
            for (index, expression) in expressions.iter().enumerate() {
                let name = format!("{list}[{index}]");
                let expression = expression.get_ref();
                let uses = match add(&mut env, &name, expression) {
                    Ok(uses) => Some(uses),
                    Err(error) => {
                        problems.push(ScopeProblem { list, index, error });
                        None
                    }
                };
                compiled.push(Compiled { name, uses });
            }
        }
        let [include, exclude] = lists;
        let scope = Scope {
            out_of_scope: config.out_of_scope,
            env: Arc::new(env),
            include,
            exclude,
        };
        (scope, problems)
    }

    /// Whether the target holds this record; an error names the expression.
    /// An expression over fields a kind does not have (`department`, for
    /// organisations) is left out for records of that kind: a scope of
    /// people does not drop every organisation.
    pub fn holds(&self, record: &Record) -> Result<bool, String> {
        let kind = record.kind();
        let applies = |expression: &&Compiled| {
            expression
                .uses
                .as_ref()
                .is_none_or(|uses| uses.apply_to(kind))
        };
        let mut include = self.include.iter().filter(applies).peekable();
        let mut included = include.peek().is_none();
        for expression in include {
            if self.matches(expression, record)? {
                included = true;
                break;
            }
        }
        if !included {
            return Ok(false);
        }
        for expression in self.exclude.iter().filter(applies) {
            if self.matches(expression, record)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn matches(&self, expression: &Compiled, record: &Record) -> Result<bool, String> {
        let failed = |message: String| format!("[target.scope] {}: {message}", expression.name);
        let uses = expression
            .uses
            .as_ref()
            .ok_or_else(|| failed("the expression does not compile".into()))?;
        let template = self
            .env
            .get_template(&expression.name)
            .map_err(|error| failed(describe(&error)))?;
        let printed = template
            .render(uses.context(record))
            .map_err(|error| failed(describe(&error)))?;
        Ok(printed == "1")
    }
}

/// Compiles `expression` alone first (so that its errors point into it,
/// and nothing but one expression gets into the template), then as the
/// template that evaluates it.
fn add(env: &mut Environment<'static>, name: &str, expression: &str) -> Result<Uses, CompileError> {
    env.compile_expression(expression)
        .map_err(|error| compile_error(expression, &error))?;
    let wrapped = format!("{{% if ({expression}) %}}1{{% endif %}}");
    env.add_template_owned(name.to_string(), wrapped.clone())
        .and_then(|()| env.get_template(name))
        .map(|template| Uses::of(template.undeclared_variables(false)))
        .map_err(|error| compile_error(&wrapped, &error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<Record> {
        crate::mapping::test_records(text)
    }

    fn compiled(include: &[&str], exclude: &[&str]) -> Scope {
        let text = format!("include = {include:?}\nexclude = {exclude:?}\n");
        let config: ScopeConfig = toml::from_str(&text).unwrap();
        let (scope, problems) = Scope::compile(&config);
        assert!(problems.is_empty(), "{problems:?}");
        scope
    }

    #[test]
    fn include_any_and_exclude_none() {
        let people = records(
            "ext_id;email;department;custom.badge\n\
             E1;a@corp.example;Sales;staff\n\
             E2;b@corp.example;Support;intern\n\
             E3;c@other.example;Sales;staff\n\
             E4;d@corp.example;Finance;staff\n\
             E5;;;\n",
        );
        let scope = compiled(
            &[r#"department in ["Sales", "Support"]"#],
            &[
                r#"custom.badge == "intern""#,
                r#"not (email is endingwith("@corp.example"))"#,
            ],
        );
        let held: Vec<&str> = people
            .iter()
            .filter(|r| scope.holds(r).unwrap())
            .map(|r| r.key())
            .collect();
        assert_eq!(held, ["E1"]);
        // A missing value matches nothing, and is no error.
        let by_mail = compiled(&[r#"email is endingwith("@corp.example")"#], &[]);
        assert_eq!(by_mail.holds(&people[4]), Ok(false));
        assert_eq!(by_mail.holds(&people[0]), Ok(true));
    }

    #[test]
    fn expressions_over_user_fields_leave_organisations_in_scope() {
        let orgs = crate::mapping::test_records_of(
            crate::ingest::record::RecordKind::Orgs,
            "ext_id;label;city\nO1;Sales;Lyon\nO2;Support;Paris\n",
        );
        let scope = compiled(
            &[r#"department in ["Sales"]"#],
            &[r#"city == "Paris""#, r#"first_name == "Ana""#],
        );
        let held: Vec<bool> = orgs.iter().map(|r| scope.holds(r).unwrap()).collect();
        // department and first_name are no organisation's; city is.
        assert_eq!(held, [true, false]);
    }

    #[test]
    fn no_include_holds_everyone_but_the_excluded() {
        let people = records("ext_id;custom.badge\nE1;intern\nE2;staff\nE3;\n");
        let scope = compiled(&[], &[r#"custom.badge == "intern""#]);
        let held: Vec<bool> = people.iter().map(|r| scope.holds(r).unwrap()).collect();
        assert_eq!(held, [false, true, true]);
    }

    #[test]
    fn a_bad_expression_is_named_with_its_position() {
        let config: ScopeConfig =
            toml::from_str("include = [\"department in [\\\"Sales\\\"\", \"x %} {{ y\"]\n")
                .unwrap();
        let (_, problems) = Scope::compile(&config);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!((problems[0].list, problems[0].index), ("include", 0));
        assert_eq!((problems[1].list, problems[1].index), ("include", 1));
        assert_eq!(problems[1].error.column, 4, "{:?}", problems[1].error);
    }
}
