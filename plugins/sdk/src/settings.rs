//! A plugin's settings as the plugin's own `serde` types.
//!
//! Settings are JSON documents an administrator stores per scope (`tenant`,
//! or `employee:<extension>`), checked by the plugin's `validate-settings`
//! before they are stored. Parse them with [`parse`] there and read them
//! with [`tenant`] / [`employee`] when deciding: the same type, so what was
//! accepted is what is read. Add `#[serde(deny_unknown_fields)]` to refuse
//! misspelt keys.

use serde::de::DeserializeOwned;

/// Where a settings document applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole tenant.
    Tenant,
    /// One employee, by extension.
    Employee(String),
}

impl Scope {
    /// Reads a scope as the router names it. The error says what is wrong
    /// (for `validate-settings` to return as it is).
    pub fn parse(scope: &str) -> Result<Scope, String> {
        match scope.split_once(':') {
            None if scope == "tenant" => Ok(Scope::Tenant),
            Some(("employee", ext))
                if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Scope::Employee(ext.to_owned()))
            }
            _ => Err(format!(
                "scope `{scope}` is neither `tenant` nor `employee:<extension>`"
            )),
        }
    }

    /// The scope as the router names it (`tenant`, `employee:2001`).
    pub fn name(&self) -> String {
        match self {
            Scope::Tenant => "tenant".to_owned(),
            Scope::Employee(ext) => format!("employee:{ext}"),
        }
    }
}

/// Parses a settings document into `T`. A mistake is reported as
/// `path: reason` (`blocked[1]: invalid type: integer, expected a string`),
/// which the admin API turns into a 422 naming that field; a document that
/// is not JSON at all is reported without a path.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let reason = without_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() || path == "." || path.is_empty() {
            if inner.is_data() {
                reason
            } else {
                format!("not JSON: {reason}")
            }
        } else {
            format!("{path}: {reason}")
        }
    })?;
    de.end()
        .map_err(|e| format!("not JSON: {}", without_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends ` at line 1 column 17`: useless to someone editing a
/// form field.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The stored settings of `scope` as `T`; `None` when there are none. A
/// stored document that no longer parses (written by an older version of
/// the plugin that accepted more) is logged and treated as none.
pub fn get<T: DeserializeOwned>(scope: &str) -> Option<T> {
    let json = crate::host::setting(scope)?;
    match parse(&json) {
        Ok(v) => Some(v),
        Err(e) => {
            crate::warn!("settings of `{scope}` ignored: {e}");
            None
        }
    }
}

/// The tenant's settings as `T` (see [`get`]).
pub fn tenant<T: DeserializeOwned>() -> Option<T> {
    get("tenant")
}

/// An employee's settings as `T` (see [`get`]).
pub fn employee<T: DeserializeOwned>(extension: &str) -> Option<T> {
    get(&format!("employee:{extension}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Blocklist {
        #[allow(dead_code)]
        blocked: Vec<String>,
    }

    #[test]
    fn a_wrong_type_is_reported_on_its_path() {
        let e = parse::<Blocklist>(r#"{"blocked": ["1", 2]}"#).unwrap_err();
        assert_eq!(
            e,
            "blocked[1]: invalid type: integer `2`, expected a string"
        );
    }

    #[test]
    fn an_unknown_field_is_reported_on_itself() {
        let e = parse::<Blocklist>(r#"{"blocked": [], "blokced": []}"#).unwrap_err();
        assert_eq!(e, "blokced: unknown field `blokced`, expected `blocked`");
    }

    #[test]
    fn text_that_is_not_json_says_so() {
        let e = parse::<Blocklist>("{blocked").unwrap_err();
        assert!(e.starts_with("not JSON: "), "{e}");
    }

    #[test]
    fn trailing_text_is_refused() {
        assert!(parse::<Blocklist>(r#"{"blocked": []} x"#).is_err());
    }

    #[test]
    fn scopes_are_tenant_or_an_employee() {
        assert_eq!(Scope::parse("tenant"), Ok(Scope::Tenant));
        assert_eq!(
            Scope::parse("employee:2001"),
            Ok(Scope::Employee("2001".into()))
        );
        assert!(Scope::parse("employee:").is_err());
        assert!(Scope::parse("group:2100").is_err());
        assert_eq!(Scope::Employee("2001".into()).name(), "employee:2001");
    }
}
