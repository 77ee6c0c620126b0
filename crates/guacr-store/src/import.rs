//! Guacamole's `user-mapping.xml` (the default file authentication of guacamole-client):
//!
//! ```xml
//! <user-mapping>
//!   <authorize username="alice" password="5f4d..." encoding="md5">
//!     <connection name="web1">
//!       <protocol>ssh</protocol>
//!       <param name="hostname">10.0.0.5</param>
//!     </connection>
//!   </authorize>
//!   <authorize username="bob" password="secret">
//!     <protocol>vnc</protocol>              <!-- one unnamed connection -->
//!     <param name="hostname">desk</param>
//!   </authorize>
//! </user-mapping>
//! ```
//!
//! An `authorize` with `<protocol>`/`<param>` directly inside has one connection,
//! named `DEFAULT` like guacamole-client does. Encodings: none (plain text),
//! `md5`, `sha256` (hex digests, any case).

use std::collections::BTreeMap;

use crate::{Error, LegacyHash};

/// The password of an `authorize` element.
#[derive(Clone, PartialEq, Eq)]
pub enum MappedPassword {
    Plain(String),
    Hashed(LegacyHash, String),
}

impl std::fmt::Debug for MappedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MappedPassword::Plain(_) => f.write_str("Plain(..)"),
            MappedPassword::Hashed(k, _) => write!(f, "Hashed({k:?}, ..)"),
        }
    }
}

/// One connection of an `authorize`.
#[derive(Clone, PartialEq, Eq)]
pub struct MappedConnection {
    pub name: String,
    pub protocol: String,
    pub params: BTreeMap<String, String>,
}

impl std::fmt::Debug for MappedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedConnection")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One `authorize` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    pub username: String,
    pub password: MappedPassword,
    pub connections: Vec<MappedConnection>,
}

/// A parsed `user-mapping.xml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMapping {
    pub users: Vec<MappedUser>,
}

/// What [`crate::Store::import_user_mapping`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub users_created: Vec<String>,
    /// Users that already existed (their passwords are left alone).
    pub users_existing: Vec<String>,
    pub connections_created: Vec<String>,
    pub connections_updated: Vec<String>,
    /// Number of (user, connection) grants made.
    pub grants: usize,
}

/// The name guacamole-client gives the single connection of an `authorize`
/// with `<protocol>` directly inside.
pub const DEFAULT_CONNECTION_NAME: &str = "DEFAULT";

/// Parses a `user-mapping.xml`. Errors name the element and say what is wrong.
pub fn parse_user_mapping(xml: &str) -> Result<UserMapping, Error> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .map_err(|e| Error::Import(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "user-mapping" {
        return Err(Error::Import(format!(
            "the root element is <{}>, expected <user-mapping>",
            root.tag_name().name()
        )));
    }
    let mut users = Vec::new();
    for auth in root.children().filter(|n| n.is_element()) {
        if auth.tag_name().name() != "authorize" {
            continue;
        }
        let line = doc.text_pos_at(auth.range().start).row;
        let username = auth
            .attribute("username")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Import(format!("<authorize> on line {line} has no username")))?
            .to_owned();
        let pw = auth.attribute("password").unwrap_or("");
        let password = match auth
            .attribute("encoding")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("plain") => MappedPassword::Plain(pw.to_owned()),
            Some("md5") => MappedPassword::Hashed(LegacyHash::Md5, pw.to_owned()),
            Some("sha256") => MappedPassword::Hashed(LegacyHash::Sha256, pw.to_owned()),
            Some(other) => {
                return Err(Error::Import(format!(
                    "user {username:?}: unsupported password encoding {other:?} (plain, md5, sha256)"
                )));
            }
        };
        let mut connections = Vec::new();
        // A protocol/params directly under <authorize>: one connection.
        let direct = element_text(auth, "protocol");
        if let Some(protocol) = direct {
            connections.push(MappedConnection {
                name: DEFAULT_CONNECTION_NAME.to_owned(),
                protocol,
                params: params_of(auth),
            });
        }
        for conn in auth
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "connection")
        {
            let name = conn
                .attribute("name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    Error::Import(format!("user {username:?}: a <connection> has no name"))
                })?
                .to_owned();
            let protocol = element_text(conn, "protocol").ok_or_else(|| {
                Error::Import(format!(
                    "user {username:?}, connection {name:?}: no <protocol>"
                ))
            })?;
            connections.push(MappedConnection {
                name,
                protocol,
                params: params_of(conn),
            });
        }
        users.push(MappedUser {
            username,
            password,
            connections,
        });
    }
    Ok(UserMapping { users })
}

fn element_text(parent: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    parent
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == tag)
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn params_of(parent: roxmltree::Node<'_, '_>) -> BTreeMap<String, String> {
    parent
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "param")
        .filter_map(|p| {
            let name = p.attribute("name")?.to_owned();
            // Text is kept as written (a private key keeps its newlines).
            let value = p.text().unwrap_or("").to_owned();
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<user-mapping>
  <!-- plain password, two connections -->
  <authorize username="alice" password="alicepw">
    <connection name="web1">
      <protocol>ssh</protocol>
      <param name="hostname">10.0.0.5</param>
      <param name="port">22</param>
      <param name="password">s3cret</param>
    </connection>
    <connection name="router">
      <protocol>telnet</protocol>
      <param name="hostname">192.168.1.1</param>
    </connection>
  </authorize>
  <authorize username="bob" password="5F4DCC3B5AA765D61D8327DEB882CF99" encoding="md5">
    <protocol>vnc</protocol>
    <param name="hostname">desk</param>
    <param name="port">5900</param>
  </authorize>
</user-mapping>"#;

    #[test]
    fn parses_both_forms() {
        let m = parse_user_mapping(SAMPLE).unwrap();
        assert_eq!(m.users.len(), 2);
        let alice = &m.users[0];
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.password, MappedPassword::Plain("alicepw".into()));
        assert_eq!(alice.connections.len(), 2);
        assert_eq!(alice.connections[0].params["password"], "s3cret");
        let bob = &m.users[1];
        assert!(matches!(
            bob.password,
            MappedPassword::Hashed(LegacyHash::Md5, _)
        ));
        assert_eq!(bob.connections[0].name, DEFAULT_CONNECTION_NAME);
        assert_eq!(bob.connections[0].protocol, "vnc");
        assert_eq!(bob.connections[0].params["port"], "5900");
        // Debug never shows passwords.
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("alicepw") && !dbg.contains("s3cret"));
    }

    proptest::proptest! {
        /// Arbitrary input never panics; mutated valid files neither.
        #[test]
        fn never_panics(s in "\\PC{0,300}", cut in 0usize..2000, junk in "[<>/=\"' a-z&;#x0-9]{0,20}") {
            let _ = parse_user_mapping(&s);
            let mut t = SAMPLE.to_owned();
            let mut at = cut.min(t.len());
            while !t.is_char_boundary(at) {
                at -= 1;
            }
            t.insert_str(at, &junk);
            let _ = parse_user_mapping(&t);
            let _ = parse_user_mapping(&t[..at]);
        }
    }

    #[test]
    fn clear_errors() {
        for (xml, want) in [
            (
                "<user-mapping><authorize password='x'/></user-mapping>",
                "no username",
            ),
            ("<nope/>", "expected <user-mapping>"),
            ("<user-mapping><authorize", "not well-formed"),
            (
                "<user-mapping><authorize username='a' password='x' encoding='sha512'/></user-mapping>",
                "unsupported password encoding",
            ),
            (
                "<user-mapping><authorize username='a' password='x'><connection name='c'/></authorize></user-mapping>",
                "no <protocol>",
            ),
            (
                "<!DOCTYPE x [<!ENTITY a 'aaaa'>]><user-mapping/>",
                "not well-formed",
            ),
        ] {
            let e = parse_user_mapping(xml).unwrap_err().to_string();
            assert!(e.contains(want), "{xml}: {e}");
        }
    }
}
