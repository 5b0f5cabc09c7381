//! An error and its causes as one line for a person: each cause after the
//! message, once. Errors that put their cause in their own message (most
//! `thiserror` ones do: `"state store: {0}"`) would otherwise show it twice.

/// `error: cause: cause`, a cause left out when the text before already
/// ends with it.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let part = current.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the state")]
    struct Open(#[source] Store);

    #[derive(Debug, thiserror::Error)]
    #[error("state store: {0}")]
    struct Store(#[from] std::io::Error);

    #[test]
    fn each_cause_is_shown_once() {
        let error = Open(Store(std::io::Error::other("could not acquire lock")));
        assert_eq!(
            chain(&error),
            "cannot open the state: state store: could not acquire lock"
        );
        let anyhow = anyhow::Error::new(error).context("approve");
        let error: &(dyn std::error::Error + 'static) = anyhow.as_ref();
        assert_eq!(
            chain(error),
            "approve: cannot open the state: state store: could not acquire lock"
        );
    }
}
