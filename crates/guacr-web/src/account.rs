//! A user's own two-factor authentication (TOTP): enrolment with a QR code
//! and a confirming code, turning it off, and an administrator's reset for
//! a lost authenticator. Enabling and disabling need the current password.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::api::{Authed, admin, audit_by, authed, dir_error, error};

#[derive(Deserialize)]
pub(crate) struct PasswordOnly {
    password: String,
}

#[derive(Deserialize)]
pub(crate) struct CodeOnly {
    code: String,
}

/// Authenticates the request and checks the password in its body (401
/// `invalid_credentials` if wrong): sensitive changes need it again.
async fn authed_with_password(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    addr: SocketAddr,
    body: Result<Json<PasswordOnly>, axum::extract::rejection::JsonRejection>,
) -> Result<Authed, Response> {
    let a = authed(app, method, headers, addr).await?;
    let Ok(Json(b)) = body else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Expected {\"password\"}.",
        ));
    };
    match app.dir.verify_password(&a.user.id, &b.password).await {
        Ok(true) => Ok(a),
        Ok(false) => Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "The password is wrong.",
        )),
        Err(e) => Err(dir_error(e)),
    }
}

/// The otpauth:// URI as an SVG QR code (a data: image for the client).
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// `POST /api/me/totp {"password"}`: a new secret, its URI and QR code.
pub(crate) async fn begin(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<PasswordOnly>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = match authed_with_password(&app, &method, &headers, addr, body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app.dir.totp_begin(&a.user.id).await {
        Ok(e) => Json(json!({
            "secret": e.secret,
            "uri": e.uri,
            "qr_svg": qr_svg(&e.uri),
        }))
        .into_response(),
        Err(e) => dir_error(e),
    }
}

/// `POST /api/me/totp/confirm {"code"}`: turns TOTP on.
pub(crate) async fn confirm(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<CodeOnly>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = match authed(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(Json(b)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected {\"code\"}.");
    };
    // The store ignores spaces in the code ("123 456").
    match app.dir.totp_confirm(&a.user.id, &b.code).await {
        Ok(true) => {
            audit_by(&app, "account.totp", &a, addr, "two-factor enabled".into()).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            "That code is not right (or has expired): enter the current one.",
        ),
        Err(e) => dir_error(e),
    }
}

/// `DELETE /api/me/totp {"password"}`: turns TOTP off.
pub(crate) async fn disable(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<PasswordOnly>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = match authed_with_password(&app, &method, &headers, addr, body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app.dir.totp_disable(&a.user.id).await {
        Ok(()) => {
            audit_by(&app, "account.totp", &a, addr, "two-factor disabled".into()).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

/// `DELETE /api/admin/users/{id}/totp`: an administrator's reset (a lost
/// authenticator); the user can enrol again.
pub(crate) async fn admin_reset(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = match admin(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = match app.dir.user(&id).await {
        Ok(Some(u)) => u,
        Ok(None) => return dir_error(crate::directory::DirError::NotFound),
        Err(e) => return dir_error(e),
    };
    match app.dir.totp_disable(&id).await {
        Ok(()) => {
            let detail = format!("two-factor of user {} reset", user.username);
            audit_by(&app, "admin.change", &a, addr, detail).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_of_the_uri() {
        let svg = qr_svg("otpauth://totp/guacr:alice?secret=JBSWY3DPEHPK3PXP&issuer=guacr")
            .unwrap_or_default();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<path") || svg.contains("<rect"), "{svg}");
    }
}
