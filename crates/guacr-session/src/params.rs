use std::collections::HashMap;
use std::str::FromStr;

use guacr_protocol::Status;

/// Connection parameters by name, as the owner sent them in `connect`.
///
/// The `Debug` impl never prints values: parameters carry secrets.
#[derive(Clone, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.values.keys().collect();
        keys.sort();
        f.debug_struct("Params").field("names", &keys).finish()
    }
}

/// A parameter value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for parameter \"{name}\": {reason}")]
pub struct ParamError {
    pub name: String,
    pub reason: String,
}

impl ParamError {
    pub fn status(&self) -> Status {
        Status::ClientBadRequest
    }
}

impl Params {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Params {
            values: pairs
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value, or `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// Required parameter.
    pub fn require(&self, name: &str) -> Result<&str, ParamError> {
        self.get(name).ok_or_else(|| ParamError {
            name: name.into(),
            reason: "a value is required".into(),
        })
    }

    /// Parses a value, with a default when empty.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ParamError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ParamError {
                name: name.into(),
                reason: format!("{v:?} is not a valid {}", std::any::type_name::<T>()),
            }),
        }
    }

    /// guacd booleans: exactly `true` enables; anything else is false.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_redaction() {
        let p = Params::from_pairs([("port", "22"), ("password", "hunter2"), ("x", "")]);
        assert_eq!(p.parse_or("port", 0u16), Ok(22));
        assert_eq!(p.parse_or("missing", 7u16), Ok(7));
        assert!(p.parse_or::<u16>("password", 0).is_err());
        assert_eq!(p.get("x"), None);
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
