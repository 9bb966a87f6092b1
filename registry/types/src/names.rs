//! Name rules.
//!
//! | what | rule |
//! |---|---|
//! | tenant | `^[a-z0-9][a-z0-9-]{0,62}$` |
//! | model, function | `^[a-z0-9][a-z0-9._-]{0,62}$` |
//! | manifest model alias | `^[a-z0-9][a-z0-9_-]{0,62}$` |
//!
//! The first character is never `.`, `_` or `-`, so names are safe as URL path segments and file names.

use crate::error::Error;

fn check(what: &str, name: &str, extra: &[u8], rule: &str) -> Result<(), Error> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(b));
    if ok {
        Ok(())
    } else {
        // The name is echoed only when short and printable enough to be helpful.
        let shown =
            if name.len() <= 80 && !name.chars().any(char::is_control) { format!(" {name:?}") } else { String::new() };
        Err(Error::InvalidName(format!("invalid {what} name{shown}: it must match {rule}")))
    }
}

/// Checks a tenant name against `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn validate_tenant_name(name: &str) -> Result<(), Error> {
    check("tenant", name, b"-", "^[a-z0-9][a-z0-9-]{0,62}$")
}

/// Checks a model name against `^[a-z0-9][a-z0-9._-]{0,62}$`.
pub fn validate_model_name(name: &str) -> Result<(), Error> {
    check("model", name, b"._-", "^[a-z0-9][a-z0-9._-]{0,62}$")
}

/// Checks a function name against `^[a-z0-9][a-z0-9._-]{0,62}$` (the model name rule).
pub fn validate_function_name(name: &str) -> Result<(), Error> {
    check("function", name, b"._-", "^[a-z0-9][a-z0-9._-]{0,62}$")
}

/// Checks a manifest model alias against `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn validate_alias(name: &str) -> Result<(), Error> {
    check("model alias", name, b"_-", "^[a-z0-9][a-z0-9_-]{0,62}$")
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["a", "acme", "0", "a-b-c", "9lives", &"a".repeat(63)] {
            validate_tenant_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "-a", "A", "acme_corp", "a.b", "a b", "ä", "a/b", "a\0", &"a".repeat(64)] {
            assert!(matches!(validate_tenant_name(bad), Err(Error::InvalidName(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn model_and_function_names() {
        for ok in ["m", "resnet-50", "bert_base.v2", "a.b_c-d", &"x".repeat(63)] {
            validate_model_name(ok).unwrap();
            validate_function_name(ok).unwrap();
        }
        for bad in ["", ".m", "_m", "-m", "M", "m/n", "m@1", "m n", &"x".repeat(64)] {
            assert!(matches!(validate_model_name(bad), Err(Error::InvalidName(_))));
            assert!(matches!(validate_function_name(bad), Err(Error::InvalidName(_))));
        }
    }

    #[test]
    fn alias_names() {
        validate_alias("model").unwrap();
        validate_alias("text_encoder-2").unwrap();
        for bad in ["", "_a", "a.b", "A", "a@1"] {
            assert!(validate_alias(bad).is_err());
        }
    }

    #[test]
    fn message_names_the_rule() {
        let e = validate_tenant_name("Bad").unwrap_err().to_string();
        assert!(e.contains("tenant") && e.contains("\"Bad\"") && e.contains("^[a-z0-9]"), "{e}");
    }
}
