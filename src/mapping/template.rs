//! `[target.fields]` templates: `mail = "{{ first_name | lower }}@corp.example"`.
//!
//! Undefined values are semi-strict: a template printing a field the record
//! has no value for fails (and the record is parked at that target), rather
//! than sending "ana.@corp.example"; `default` gives a value instead, and
//! `{% if field %}` is simply false.

use std::fmt;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use super::context::Uses;
use super::{CompileError, compile_error, describe, describe_in, filters};
use crate::ingest::record::{Record, RecordKind};

/// One target field's template, compiled.
#[derive(Clone)]
pub struct FieldTemplate {
    source: Arc<str>,
    compiled: Result<Compiled, CompileError>,
}

#[derive(Clone)]
struct Compiled {
    /// Holds this template alone, under the name `field`.
    env: Arc<Environment<'static>>,
    uses: Uses,
}

/// A template that failed on a record: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFailure {
    pub field: String,
    pub message: String,
}

impl FieldTemplate {
    pub fn compile(source: &str) -> FieldTemplate {
        let mut env = filters::environment(UndefinedBehavior::SemiStrict);
        let uses = env
            .add_template_owned("field", source.to_string())
            .and_then(|()| env.get_template("field"))
            .map(|template| Uses::of(template.undeclared_variables(false)));
        let compiled = match uses {
            Ok(uses) => Ok(Compiled {
                env: Arc::new(env),
                uses,
            }),
            Err(error) => Err(compile_error(source, &error)),
        };
        FieldTemplate {
            source: source.into(),
            compiled,
        }
    }

    /// Whether it makes sense for records of a kind: it reads only fields
    /// they have (one that does not compile applies everywhere, and fails).
    pub fn applies_to(&self, kind: RecordKind) -> bool {
        match &self.compiled {
            Ok(compiled) => compiled.uses.apply_to(kind),
            Err(_) => true,
        }
    }

    /// Why it does not compile, if it does not.
    pub fn error(&self) -> Option<&CompileError> {
        self.compiled.as_ref().err()
    }

    /// The value for a record (empty: the field has no value).
    pub fn render(&self, record: &Record) -> Result<String, String> {
        let compiled = self
            .compiled
            .as_ref()
            .map_err(|error| format!("the template does not compile: {error}"))?;
        let template = compiled
            .env
            .get_template("field")
            .map_err(|error| describe(&error))?;
        template
            .render(compiled.uses.context(record))
            .map_err(|error| {
                let missing: Vec<&str> = compiled.uses.missing(record).collect();
                if error.kind() == minijinja::ErrorKind::UndefinedError && !missing.is_empty() {
                    // Which field is worth more than where the template stopped.
                    format!(
                        "no value for {} (`| default(\"...\")` gives one)",
                        missing.join(", ")
                    )
                } else {
                    describe_in(&self.source, &error)
                }
            })
    }
}

impl PartialEq for FieldTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for FieldTemplate {}

impl fmt::Debug for FieldTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {:?}", &*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        crate::mapping::test_records(text).remove(0)
    }

    #[test]
    fn renders_canonical_and_custom_fields() {
        let r = record("ext_id;first_name;last_name;custom.badge\nE1;Zoë;Åberg;B-7\n");
        let mail = FieldTemplate::compile(
            "{{ first_name | ascii | lower }}.{{ last_name | ascii | lower }}@corp.example",
        );
        assert_eq!(mail.render(&r).unwrap(), "zoe.aberg@corp.example");
        let badge = FieldTemplate::compile("{{ custom.badge }}-{{ ext_id }}");
        assert_eq!(badge.render(&r).unwrap(), "B-7-E1");
    }

    #[test]
    fn a_missing_value_fails_unless_defaulted() {
        let r = record("ext_id;first_name\nE1;Ana\n");
        let strict = FieldTemplate::compile("{{ first_name }}.{{ last_name }}");
        let error = strict.render(&r).unwrap_err();
        assert_eq!(
            error,
            "no value for last_name (`| default(\"...\")` gives one)"
        );
        let lenient = FieldTemplate::compile("{{ first_name }}{{ last_name | default('') }}");
        assert_eq!(lenient.render(&r).unwrap(), "Ana");
        let tested = FieldTemplate::compile(
            "{% if activation_date %}{{ activation_date | date('%d/%m/%Y') }}{% endif %}",
        );
        assert_eq!(tested.render(&r).unwrap(), "");
        let dated = record("ext_id;activation_date\nE2;2026-03-09\n");
        assert_eq!(tested.render(&dated).unwrap(), "09/03/2026");
    }

    #[test]
    fn the_password_is_never_in_the_context() {
        let r = record("ext_id;password\nE1;s3cret\n");
        let template = FieldTemplate::compile("{{ password | default('none') }}");
        assert_eq!(template.render(&r).unwrap(), "none");
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let template = FieldTemplate::compile("{{ first_name | lower }\n");
        let error = template.error().expect("does not compile");
        assert_eq!(error.line, 1, "{error}");
        assert!(template.render(&record("ext_id\nE1\n")).is_err());
    }
}
