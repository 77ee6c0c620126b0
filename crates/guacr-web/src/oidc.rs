//! OpenID Connect login: authorization code flow with PKCE (S256), `state`
//! and `nonce`; the ID token's signature (provider JWKS), issuer, audience,
//! expiry and nonce are checked before a login session is opened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest;

use crate::{App, AuditEvent, lock};

/// A configured provider.
#[derive(Debug, Clone, Default)]
pub struct OidcProvider {
    pub id: String,
    pub label: String,
    /// Issuer URL without a trailing slash.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Claim that names the user (default: preferred_username, email, sub).
    pub username_claim: Option<String>,
    /// Scopes besides `openid`.
    pub scopes: String,
}

/// A login in flight (by `state`).
pub struct Pending {
    pub created: Instant,
    provider: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
}

/// The provider's discovery document (what we use of it).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovered {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/auth/oidc/{id}/login", get(login))
        .route("/api/auth/oidc/{id}/callback", get(callback))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn discover(app: &App, p: &OidcProvider) -> Result<Discovered, String> {
    if let Some(d) = app.oidc_meta.lock().await.get(&p.id) {
        return Ok(d.clone());
    }
    let url = format!("{}/.well-known/openid-configuration", p.issuer);
    let d: Discovered = client()
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("discovery at {url} failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery document at {url} is invalid: {e}"))?;
    if d.issuer.trim_end_matches('/') != p.issuer {
        return Err(format!(
            "the provider says its issuer is {:?}, configured {:?}",
            d.issuer, p.issuer
        ));
    }
    app.oidc_meta.lock().await.insert(p.id.clone(), d.clone());
    Ok(d)
}

fn redirect(to: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn login_error(message: &str) -> Response {
    let enc: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    redirect(&format!("/#/login?error={enc}"))
}

fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(u) = &app.opts.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if app.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

fn provider(app: &App, id: &str) -> Option<OidcProvider> {
    app.opts.oidc.iter().find(|p| p.id == id).cloned()
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(p) = provider(&app, &id) else {
        return login_error("Unknown sign-in provider.");
    };
    let d = match discover(&app, &p).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(provider = %p.id, "OIDC: {e}");
            return login_error("The sign-in provider is not reachable.");
        }
    };
    let state = crate::random_token();
    let nonce = crate::random_token();
    let verifier = crate::random_token();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect_uri = format!(
        "{}/api/auth/oidc/{}/callback",
        base_url(&app, &headers),
        p.id
    );
    let scope = format!("openid {}", p.scopes).trim().to_owned();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    {
        let mut pending = lock(&app.oidc_pending);
        if pending.len() > 10_000 {
            pending.retain(|_, p| p.created.elapsed() < Duration::from_secs(600));
        }
        pending.insert(
            state,
            Pending {
                created: Instant::now(),
                provider: p.id.clone(),
                nonce,
                verifier,
                redirect_uri,
            },
        );
    }
    let sep = if d.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    redirect(&format!("{}{sep}{query}", d.authorization_endpoint))
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

async fn callback(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(q): Query<CallbackParams>,
) -> Response {
    let mut ev = AuditEvent::new("login.failure");
    ev.remote_addr = addr.ip().to_string();
    let pending = q
        .state
        .as_deref()
        .and_then(|s| lock(&app.oidc_pending).remove(s));
    let Some(pending) =
        pending.filter(|p| p.provider == id && p.created.elapsed() < Duration::from_secs(600))
    else {
        ev.detail = format!("oidc {id}: unknown or expired state");
        app.audit(ev).await;
        return login_error("The sign-in attempt expired or is not valid; try again.");
    };
    if let Some(e) = q.error {
        ev.detail = format!("oidc {id}: provider error {e}");
        app.audit(ev).await;
        let msg = q.error_description.unwrap_or(e);
        return login_error(&format!("The sign-in provider refused: {msg}"));
    }
    let (Some(code), Some(p)) = (q.code, provider(&app, &id)) else {
        return login_error("The sign-in provider sent no code.");
    };
    match finish(&app, &p, &pending, &code).await {
        Ok((username, display)) => {
            let user = match app.dir.external_user(&username, &display).await {
                Ok(u) if !u.disabled => u,
                Ok(_) => {
                    ev.username = username;
                    ev.detail = format!("oidc {id}: account disabled");
                    app.audit(ev).await;
                    return login_error("This account is disabled.");
                }
                Err(e) => {
                    tracing::error!("OIDC user lookup failed: {e}");
                    return login_error("Internal error.");
                }
            };
            let (cookie, _csrf) = crate::api::open_session(&app, &user).await;
            ev.kind = "login.success".into();
            ev.username = user.username.clone();
            ev.detail = format!("oidc {id}");
            app.audit(ev).await;
            let mut res = redirect("/");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            tracing::warn!(provider = %id, "OIDC login failed: {e}");
            ev.detail = format!("oidc {id}: {e}");
            app.audit(ev).await;
            login_error("Sign-in failed: the provider's answer could not be verified.")
        }
    }
}

/// Redeems the code and verifies the ID token; returns (username, display name).
async fn finish(
    app: &App,
    p: &OidcProvider,
    pending: &Pending,
    code: &str,
) -> Result<(String, String), String> {
    let d = discover(app, p).await?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", pending.redirect_uri.clone()),
        ("client_id", p.client_id.clone()),
        ("code_verifier", pending.verifier.clone()),
    ];
    if let Some(s) = &p.client_secret {
        form.push(("client_secret", s.clone()));
    }
    let tokens: TokenResponse = client()
        .post(&d.token_endpoint)
        .form(&form)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("token endpoint: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token response: {e}"))?;
    let header = jsonwebtoken::decode_header(&tokens.id_token)
        .map_err(|e| format!("id_token header: {e}"))?;
    let jwks: JwkSet = client()
        .get(&d.jwks_uri)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("JWKS: {e}"))?
        .json()
        .await
        .map_err(|e| format!("JWKS document: {e}"))?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None => jwks.keys.first(),
    }
    .ok_or("no JWKS key matches the id_token")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWKS key: {e}"))?;
    if matches!(
        header.alg,
        jsonwebtoken::Algorithm::HS256
            | jsonwebtoken::Algorithm::HS384
            | jsonwebtoken::Algorithm::HS512
    ) {
        return Err("symmetric id_token algorithms are not accepted".into());
    }
    let mut v = Validation::new(header.alg);
    v.set_audience(&[&p.client_id]);
    v.set_issuer(&[&p.issuer, &d.issuer]);
    v.leeway = 30;
    let claims: HashMap<String, serde_json::Value> =
        jsonwebtoken::decode(&tokens.id_token, &key, &v)
            .map_err(|e| format!("id_token: {e}"))?
            .claims;
    let nonce = claims.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
    if !crate::token::ct_eq(nonce.as_bytes(), pending.nonce.as_bytes()) {
        return Err("id_token nonce mismatch".into());
    }
    let claim = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let username = match &p.username_claim {
        Some(c) => claim(c),
        None => claim("preferred_username")
            .or_else(|| claim("email"))
            .or_else(|| claim("sub")),
    }
    .ok_or("the id_token names no user")?;
    let display = claim("name").unwrap_or_else(|| username.clone());
    Ok((username, display))
}
