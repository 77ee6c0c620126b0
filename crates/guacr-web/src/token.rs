//! Signed connection tokens: HS256 JWTs that open one connection without a
//! login (for embedding in other applications).

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// The claims of a connection token (docs/web-api.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Claims {
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    /// A label for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// A stored connection id…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// …or a protocol with its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

impl TokenError {
    /// The message the browser shows.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Expired => "The link has expired.",
            TokenError::Invalid => "The link is not valid.",
        }
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs `claims` (fills `iat` when zero).
pub fn create(secret: &[u8], mut claims: Claims) -> anyhow::Result<String> {
    if claims.iat == 0 {
        claims.iat = now_secs();
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

/// Checks signature, algorithm and expiry; the claims must name a connection
/// or a protocol.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 5;
    v.validate_exp = true;
    v.required_spec_claims = ["exp"].iter().map(|s| (*s).to_owned()).collect();
    match jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &v) {
        Ok(d) => {
            if d.claims.connection.is_none() && d.claims.protocol.is_none() {
                return Err(TokenError::Invalid);
            }
            Ok(d.claims)
        }
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
        Err(_) => Err(TokenError::Invalid),
    }
}

/// Constant-time comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_forgery() {
        let claims = Claims {
            exp: now_secs() + 60,
            connection: Some("7".into()),
            ..Default::default()
        };
        let t = create(b"secret-1", claims.clone()).unwrap();
        assert_eq!(
            verify(b"secret-1", &t).unwrap().connection.as_deref(),
            Some("7")
        );
        assert_eq!(verify(b"secret-2", &t), Err(TokenError::Invalid));
        assert_eq!(verify(b"secret-1", "not.a.jwt"), Err(TokenError::Invalid));
        let old = create(
            b"secret-1",
            Claims {
                exp: now_secs() - 120,
                ..claims
            },
        )
        .unwrap();
        assert_eq!(verify(b"secret-1", &old), Err(TokenError::Expired));
        // alg=none is refused.
        let parts: Vec<&str> = t.split('.').collect();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert_eq!(verify(b"secret-1", &none), Err(TokenError::Invalid));
    }
}
