//! The RDP connection sequence on IronRDP's connector: TCP, X.224
//! negotiation, TLS (with certificate checks or pinning), CredSSP (NLA) and
//! the rest of the sequence up to the active stage; and the Guacamole status
//! for every way it can fail.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use guacr_protocol::Status;
use guacr_session::SessionError;
use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::generator::GeneratorState;
use ironrdp_connector::{
    BitmapConfig, ClientConnector, ClientConnectorState, ConnectionResult, ConnectorError,
    ConnectorErrorKind, ConnectorResult, Credentials, DesktopSize, ServerName,
};
use ironrdp_connector::{Sequence, Written};
use ironrdp_pdu::gcc;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{MajorPlatformType, client_codecs_capabilities};
use ironrdp_pdu::rdp::client_info::PerformanceFlags;
use ironrdp_tls::CertificateValidation;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::settings::{RdpSettings, Security};

/// A transport after the security upgrade (TLS, or plain TCP for standard
/// RDP security).
pub trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T> AsyncReadWrite for T where T: AsyncRead + AsyncWrite {}
pub type Stream = Box<dyn AsyncReadWrite + Unpin + Send + Sync>;
pub type UpgradedFramed = ironrdp_tokio::TokioFramed<Stream>;

/// What the connection needs beyond the settings.
pub struct ConnectRequest<'a> {
    pub settings: &'a RdpSettings,
    pub username: Option<String>,
    pub password: Option<String>,
    pub domain: Option<String>,
    pub width: u16,
    pub height: u16,
    pub dpi: u32,
    /// Keyboard layout id (e.g. 0x409 en-US).
    pub keyboard_layout: u32,
    /// Keyboard type, subtype and function-key count of the layout (Japanese keyboards are
    /// type 7 with their own subtype; everything else IBM enhanced, 12 keys).
    pub keyboard_type: u32,
    pub keyboard_subtype: u32,
    pub function_keys: u32,
    pub timezone: ironrdp_pdu::rdp::client_info::TimezoneInfo,
    pub connect_timeout: Duration,
    pub audio: bool,
}

/// The connection, ready for the active stage.
pub struct Connected {
    pub framed: UpgradedFramed,
    pub result: ConnectionResult,
    /// SHA-256 of the server's TLS certificate, if TLS was used.
    pub fingerprint: Option<[u8; 32]>,
}

fn upstream(msg: impl Into<String>) -> SessionError {
    SessionError::new(Status::UpstreamError, msg)
}

/// The Guacamole error for a failure of the connection sequence outside
/// CredSSP: negotiation refusals and protocol failures are 515 with the
/// reason, an early "access denied" is 769.
pub fn connector_error(e: &ConnectorError) -> SessionError {
    match e.kind() {
        ConnectorErrorKind::AccessDenied => SessionError::new(
            Status::ClientUnauthorized,
            "The RDP server denied access to this user.",
        ),
        ConnectorErrorKind::Credssp(_) => SessionError::new(
            Status::ClientUnauthorized,
            format!("RDP authentication (NLA) failed: {}", e.report()),
        ),
        ConnectorErrorKind::Negotiation(failure) => upstream(format!(
            "RDP security negotiation failed: {failure} (check the \"security\" parameter)"
        )),
        _ => upstream(format!("RDP connection failed: {}", e.report())),
    }
}

/// Failures during CredSSP are the credentials' fault (a wrong password
/// makes servers answer with an error or close the connection).
pub fn credssp_error(e: &ConnectorError) -> SessionError {
    match e.kind() {
        ConnectorErrorKind::Negotiation(_) => connector_error(e),
        _ => SessionError::new(
            Status::ClientUnauthorized,
            format!(
                "RDP authentication (NLA) failed: {} — wrong username, password or domain?",
                e.report()
            ),
        ),
    }
}

/// A TLS handshake failure (515 with the reason).
pub fn tls_error(e: &std::io::Error) -> SessionError {
    upstream(format!("TLS handshake with the RDP server failed: {e}"))
}

/// The IronRDP connector configuration for these settings.
pub fn connector_config(req: &ConnectRequest<'_>) -> ironrdp_connector::Config {
    let s = req.settings;
    let (tls, credssp, rdp) = if s.disable_auth {
        // guacd's disable-auth: no NLA, the server's login screen.
        let (tls, _, rdp) = s.security.protocols();
        (tls || s.security == Security::Nla, false, rdp)
    } else {
        s.security.protocols()
    };
    let scale = (req.dpi * 100 / 96).clamp(100, 500);
    ironrdp_connector::Config {
        desktop_size: DesktopSize {
            width: req.width,
            height: req.height,
        },
        monitor_layout: None,
        desktop_scale_factor: if scale == 100 { 0 } else { scale },
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: tls,
        enable_credssp: credssp,
        enable_standard_rdp_security: rdp,
        credentials: Credentials::UsernamePassword {
            username: req.username.clone().unwrap_or_default(),
            password: req.password.clone().unwrap_or_default(),
        },
        domain: req.domain.clone(),
        client_build: 0,
        client_name: s.client_name.clone(),
        keyboard_type: gcc::KeyboardType(req.keyboard_type),
        keyboard_subtype: req.keyboard_subtype,
        keyboard_functional_keys_count: req.function_keys,
        keyboard_layout: req.keyboard_layout,
        connection_type: gcc::ConnectionType::Lan,
        ime_file_name: String::new(),
        bitmap: Some(BitmapConfig {
            lossy_compression: false,
            color_depth: s.color_depth,
            // RemoteFX is lossy (the display pipeline decides about
            // lossy encoding itself); like guacd, planar/interleaved bitmaps.
            codecs: client_codecs_capabilities(&["remotefx:off"]).unwrap_or_default(),
        }),
        dig_product_id: String::new(),
        client_dir: String::new(),
        alternate_shell: s.initial_program.clone().unwrap_or_default(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
        platform: MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        autologon: req.password.is_some(),
        enable_audio_playback: req.audio,
        enable_audio_capture: false,
        performance_flags: PerformanceFlags::from_bits_truncate(s.performance.flags()),
        license_cache: None,
        timezone_info: req.timezone.clone(),
        compression_type: None,
        enable_server_pointer: true,
        pointer_software_rendering: false,
        multitransport_flags: None,
        support_dyn_vc_gfx_protocol: false,
    }
}

/// Builds the connector; `attach` adds the static channels.
pub fn connector(
    req: &ConnectRequest<'_>,
    client_addr: SocketAddr,
    attach: impl FnOnce(&mut ClientConnector),
) -> ClientConnector {
    let mut c = ClientConnector::new(connector_config(req), client_addr);
    if req.settings.console {
        c = c.with_cluster_data(gcc::ClientClusterData {
            flags: gcc::RedirectionFlags::REDIRECTION_SUPPORTED
                | gcc::RedirectionFlags::REDIRECTED_SESSION_FIELD_VALID,
            redirection_version: gcc::RedirectionVersion::V4,
            redirected_session_id: 0,
        });
    }
    if let Some(info) = &req.settings.load_balance_info {
        c = c.with_load_balance_info(info.clone());
    }
    attach(&mut c);
    c
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

pub fn hex_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertPolicy {
    /// The platform's trust store and the host name.
    Verify,
    /// Anything (`ignore-cert`, `cert-tofu`).
    Ignore,
    /// Only these SHA-256 fingerprints (`cert-fingerprints`).
    Pinned(Vec<[u8; 32]>),
}

impl CertPolicy {
    pub fn from_settings(s: &RdpSettings) -> CertPolicy {
        if !s.cert_fingerprints.is_empty() {
            CertPolicy::Pinned(s.cert_fingerprints.clone())
        } else if s.ignore_cert || s.cert_tofu {
            CertPolicy::Ignore
        } else {
            CertPolicy::Verify
        }
    }

    /// Checks a certificate after the handshake (pinning).
    pub fn check(&self, fp: &[u8; 32]) -> Result<(), SessionError> {
        match self {
            CertPolicy::Pinned(pins) if !pins.contains(fp) => Err(upstream(format!(
                "The RDP server's certificate (SHA-256 {}) matches none of \"cert-fingerprints\".",
                hex_fingerprint(fp)
            ))),
            _ => Ok(()),
        }
    }
}

/// Phase 1: TCP and X.224 negotiation. Returns the framed transport, the
/// connector and the protocol the server selected.
pub async fn begin(
    req: &ConnectRequest<'_>,
    attach: impl FnOnce(&mut ClientConnector),
) -> Result<
    (
        ironrdp_tokio::TokioFramed<tokio::net::TcpStream>,
        ClientConnector,
        SecurityProtocol,
    ),
    SessionError,
> {
    let s = req.settings;
    let tcp = connect_tcp(&s.hostname, s.port, req.connect_timeout).await?;
    let client_addr = tcp
        .local_addr()
        .map_err(|e| upstream(format!("RDP connection failed: {e}")))?;
    let mut framed = ironrdp_tokio::TokioFramed::new(tcp);
    let mut connector = connector(req, client_addr, attach);
    let begun = tokio::time::timeout(req.connect_timeout, async {
        let mut wbuf = ironrdp_core::WriteBuf::new();
        while !connector.should_perform_security_upgrade() {
            let (stream, rbuf) = framed.get_inner_mut();
            step(stream, rbuf, &mut connector, &mut wbuf).await?;
        }
        Ok::<_, ConnectorError>(())
    })
    .await
    .map_err(|_| {
        SessionError::new(
            Status::UpstreamTimeout,
            "The RDP server did not answer the connection request in time.",
        )
    })?;
    begun.map_err(|e| connector_error(&e))?;
    let selected = match connector.state {
        ClientConnectorState::EnhancedSecurityUpgrade { selected_protocol } => selected_protocol,
        _ => return Err(upstream("RDP negotiation ended in an unexpected state.")),
    };
    Ok((framed, connector, selected))
}

/// Whether the selected protocol authenticates with CredSSP (NLA).
pub fn uses_credssp(selected: SecurityProtocol) -> bool {
    selected.intersects(SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX)
}

/// Phase 2: TLS (unless standard RDP security was selected), CredSSP, and
/// the rest of the connection sequence.
pub async fn finish(
    req: &ConnectRequest<'_>,
    framed: ironrdp_tokio::TokioFramed<tokio::net::TcpStream>,
    mut connector: ClientConnector,
    selected: SecurityProtocol,
    timeout: Duration,
) -> Result<Connected, SessionError> {
    let s = req.settings;
    let server_name = ServerName::new(s.hostname.clone());
    let (upgraded, public_key, fp) = if selected.is_empty() {
        connector.mark_security_upgrade_as_done();
        let (stream, leftover) = framed.into_inner();
        let stream: Stream = Box::new(stream);
        (
            UpgradedFramed::new_with_leftover(stream, leftover),
            Vec::new(),
            None,
        )
    } else {
        let policy = CertPolicy::from_settings(s);
        let (stream, leftover) = framed.into_inner();
        let validation = match policy {
            CertPolicy::Verify => CertificateValidation::Strict,
            _ => CertificateValidation::DangerouslyAcceptInvalidCertificate,
        };
        let (tls, cert) = tokio::time::timeout(
            timeout,
            ironrdp_tls::upgrade_with_certificate_validation(stream, &s.hostname, validation),
        )
        .await
        .map_err(|_| {
            SessionError::new(
                Status::UpstreamTimeout,
                "The TLS handshake with the RDP server did not complete in time.",
            )
        })?
        .map_err(|e| tls_error(&e))?;
        let fp = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|der| fingerprint(der.as_ref()))
            .ok_or_else(|| upstream("The RDP server sent no TLS certificate."))?;
        policy.check(&fp)?;
        let public_key = ironrdp_tls::extract_tls_server_public_key(&cert)
            .ok_or_else(|| upstream("The RDP server's certificate has no public key."))?
            .to_owned();
        connector.mark_security_upgrade_as_done();
        let stream: Stream = Box::new(tls);
        (
            UpgradedFramed::new_with_leftover(stream, leftover),
            public_key,
            Some(fp),
        )
    };
    let framed = upgraded;
    let (mut stream, mut rbuf) = framed.into_inner();
    let mut wbuf = ironrdp_core::WriteBuf::new();
    if connector.should_perform_credssp() {
        tokio::time::timeout(
            timeout,
            credssp(
                &mut stream,
                &mut rbuf,
                &mut wbuf,
                connector.config.credentials.clone(),
                connector.config.domain.clone(),
                selected,
                server_name.clone(),
                public_key.clone(),
            ),
        )
        .await
        .map_err(|_| {
            SessionError::new(
                Status::UpstreamTimeout,
                "RDP authentication (NLA) did not complete in time.",
            )
        })??;
        connector.mark_credssp_as_done();
    }
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            if connector.should_perform_multitransport() {
                wbuf.clear();
                let written = connector.skip_multitransport(&mut wbuf)?;
                write_written(&mut stream, &wbuf, written).await?;
                continue;
            }
            step(&mut stream, &mut rbuf, &mut connector, &mut wbuf).await?;
            if let Some(outcome) = connector.state.take_outcome() {
                break Ok::<_, ConnectorError>(outcome);
            }
        }
    })
    .await
    .map_err(|_| {
        SessionError::new(
            Status::UpstreamTimeout,
            "The RDP server did not complete the connection sequence in time.",
        )
    })?
    .map_err(|e| connector_error(&e))?;
    let framed = UpgradedFramed::new_with_leftover(stream, rbuf);
    let result = match outcome {
        ironrdp_connector::ConnectionOutcome::Connected(r) => r,
        other => {
            return Err(SessionError::new(
                Status::Unsupported,
                format!(
                    "The RDP server redirected the connection (not supported by guacr yet): {other:?}"
                ),
            ));
        }
    };
    Ok(Connected {
        framed,
        result,
        fingerprint: fp,
    })
}

enum Taken {
    Pdu(BytesMut),
    Skipped,
    NeedMore,
}

/// Takes the expected PDU off `rbuf` if it is complete.
fn take(rbuf: &mut BytesMut, size: Option<(bool, usize)>) -> ConnectorResult<Taken> {
    match size {
        Some((matched, len)) if rbuf.len() >= len => {
            let pdu = rbuf.split_to(len);
            if matched {
                return Ok(Taken::Pdu(pdu));
            }
            if len == 0 {
                return Err(ironrdp_connector::general_err!(
                    "the RDP server sent an empty unexpected PDU"
                ));
            }
            tracing::debug!("skipping an unexpected RDP PDU ({len} bytes)");
            Ok(Taken::Skipped)
        }
        _ => Ok(Taken::NeedMore),
    }
}

async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> ConnectorResult<()> {
    rbuf.reserve(16 * 1024);
    let n = stream
        .read_buf(rbuf)
        .await
        .map_err(|e| ironrdp_connector::custom_err!("read", e))?;
    if n == 0 {
        return Err(ironrdp_connector::custom_err!(
            "read",
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the RDP server closed the connection"
            )
        ));
    }
    Ok(())
}

fn hint_size<Q: Sequence + ?Sized>(
    seq: &Q,
    bytes: &[u8],
) -> Option<ConnectorResult<Option<(bool, usize)>>> {
    seq.next_pdu_hint().map(|h| {
        h.find_size(bytes)
            .map_err(|e| ironrdp_connector::custom_err!("PDU size", e))
    })
}

async fn write_written<S: AsyncWrite + Unpin>(
    stream: &mut S,
    wbuf: &ironrdp_core::WriteBuf,
    written: Written,
) -> ConnectorResult<()> {
    if let Some(n) = written.size() {
        let data = wbuf.filled().get(..n).unwrap_or_default();
        stream
            .write_all(data)
            .await
            .map_err(|e| ironrdp_connector::custom_err!("write", e))?;
        stream
            .flush()
            .await
            .map_err(|e| ironrdp_connector::custom_err!("flush", e))?;
    }
    Ok(())
}

/// One step of a connection (or reactivation) sequence: reads the PDU it
/// expects, if any, and writes its answer.
pub async fn step<S, Q>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    seq: &mut Q,
    wbuf: &mut ironrdp_core::WriteBuf,
) -> ConnectorResult<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Q: Sequence,
{
    wbuf.clear();
    let pdu = loop {
        // The hint is a borrow of `seq`: never held across an await.
        let size = match hint_size(&*seq, rbuf) {
            None => break None,
            Some(r) => r?,
        };
        match take(rbuf, size)? {
            Taken::Pdu(p) => break Some(p),
            Taken::Skipped => {}
            Taken::NeedMore => read_more(stream, rbuf).await?,
        }
    };
    let written = match pdu {
        Some(pdu) => seq.step(&pdu, None, wbuf)?,
        None => seq.step_no_input(wbuf)?,
    };
    write_written(stream, wbuf, written).await
}

/// CredSSP (NLA) with NTLM; Kerberos (a KDC) is not supported.
#[allow(clippy::too_many_arguments)]
async fn credssp<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut ironrdp_core::WriteBuf,
    credentials: Credentials,
    domain: Option<String>,
    selected: SecurityProtocol,
    server_name: ServerName,
    public_key: Vec<u8>,
) -> Result<(), SessionError> {
    let (mut sequence, mut ts_request) = CredsspSequence::init(
        credentials,
        domain.as_deref(),
        selected,
        server_name,
        public_key,
        None,
    )
    .map_err(|e| credssp_error(&e))?;
    loop {
        let state = {
            let mut generator = sequence.process_ts_request(ts_request);
            match generator.start() {
                GeneratorState::Completed(r) => r.map_err(|e| {
                    credssp_error(&ConnectorError::new(
                        "CredSSP",
                        ConnectorErrorKind::Credssp(e),
                    ))
                })?,
                GeneratorState::Suspended(_) => {
                    return Err(SessionError::new(
                        Status::Unsupported,
                        "The RDP server asked for Kerberos authentication (not supported by guacr).",
                    ));
                }
            }
        };
        wbuf.clear();
        let written = sequence
            .handle_process_result(state, wbuf)
            .map_err(|e| credssp_error(&e))?;
        write_written(stream, wbuf, written)
            .await
            .map_err(|e| credssp_error(&e))?;
        let pdu = loop {
            let size = match sequence.next_pdu_hint().map(|h| {
                h.find_size(rbuf)
                    .map_err(|e| ironrdp_connector::custom_err!("PDU size", e))
            }) {
                None => break None,
                Some(r) => r.map_err(|e| credssp_error(&e))?,
            };
            match take(rbuf, size).map_err(|e| credssp_error(&e))? {
                Taken::Pdu(p) => break Some(p),
                Taken::Skipped => {}
                Taken::NeedMore => read_more(stream, rbuf)
                    .await
                    .map_err(|e| credssp_error(&e))?,
            }
        };
        let Some(pdu) = pdu else {
            return Ok(());
        };
        match sequence
            .decode_server_message(&pdu)
            .map_err(|e| credssp_error(&e))?
        {
            Some(next) => ts_request = next,
            None => return Ok(()),
        }
    }
}

/// TCP connection with guacd's error codes (519 refused / unknown host, 514 timeout).
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, SessionError> {
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Err(_) => Err(SessionError::new(
            Status::UpstreamTimeout,
            format!("Timed out connecting to the RDP server at {addr}."),
        )),
        Ok(Err(e)) => Err(SessionError::new(
            Status::UpstreamNotFound,
            format!("Unable to connect to the RDP server at {addr}: {e}."),
        )),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guacr_session::Params;

    fn settings(pairs: &[(&str, &str)]) -> RdpSettings {
        let mut all = vec![("hostname", "h")];
        all.extend_from_slice(pairs);
        RdpSettings::from_params(&Params::from_pairs(all)).unwrap()
    }

    fn request(s: &RdpSettings) -> ConnectRequest<'_> {
        ConnectRequest {
            settings: s,
            username: Some("u".into()),
            password: Some("p".into()),
            domain: None,
            width: 1024,
            height: 768,
            dpi: 96,
            keyboard_layout: 0x409,
            keyboard_type: 4,
            keyboard_subtype: 0,
            function_keys: 12,
            timezone: Default::default(),
            connect_timeout: Duration::from_secs(1),
            audio: false,
        }
    }

    #[test]
    fn security_maps_to_protocols() {
        let s = settings(&[("security", "tls")]);
        let c = connector_config(&request(&s));
        assert!(c.enable_tls && !c.enable_credssp && !c.enable_standard_rdp_security);
        let s = settings(&[("security", "nla")]);
        let c = connector_config(&request(&s));
        assert!(!c.enable_tls && c.enable_credssp);
        let s = settings(&[("security", "rdp")]);
        let c = connector_config(&request(&s));
        assert!(!c.enable_tls && !c.enable_credssp && c.enable_standard_rdp_security);
        let s = settings(&[]);
        let c = connector_config(&request(&s));
        assert!(c.enable_tls && c.enable_credssp && c.enable_standard_rdp_security);
        // disable-auth: never NLA.
        let s = settings(&[("disable-auth", "true")]);
        let c = connector_config(&request(&s));
        assert!(c.enable_tls && !c.enable_credssp);
    }

    #[test]
    fn config_follows_parameters() {
        let s = settings(&[
            ("initial-program", "xterm"),
            ("client-name", "a-very-long-client-name"),
            ("color-depth", "16"),
        ]);
        let mut r = request(&s);
        r.dpi = 192;
        let c = connector_config(&r);
        assert_eq!(c.alternate_shell, "xterm");
        assert_eq!(c.client_name.chars().count(), 15);
        assert_eq!(c.bitmap.as_ref().map(|b| b.color_depth), Some(16));
        assert_eq!(c.desktop_scale_factor, 200);
        assert_eq!(c.performance_flags.bits(), 0x0f);
        assert!(c.autologon);
    }

    #[test]
    fn keyboard_type_follows_the_layout() {
        let s = settings(&[]);
        let ja = crate::keymap::Layout::from_name("ja-jp-qwerty").expect("ja-jp layout");
        let mut r = request(&s);
        r.keyboard_layout = ja.keyboard_layout_id();
        r.keyboard_type = ja.keyboard_type();
        r.keyboard_subtype = ja.keyboard_subtype();
        r.function_keys = ja.function_keys();
        let c = connector_config(&r);
        assert_eq!(c.keyboard_layout, 0x0411);
        assert_eq!(c.keyboard_type, gcc::KeyboardType(7));
        assert_eq!(c.keyboard_subtype, 2);
        let us = connector_config(&request(&s));
        assert_eq!(us.keyboard_type, gcc::KeyboardType::IBM_ENHANCED);
    }

    #[test]
    fn certificate_policy() {
        assert_eq!(
            CertPolicy::from_settings(&settings(&[])),
            CertPolicy::Verify
        );
        assert_eq!(
            CertPolicy::from_settings(&settings(&[("ignore-cert", "true")])),
            CertPolicy::Ignore
        );
        let fp = fingerprint(b"certificate");
        let hex = hex_fingerprint(&fp);
        let pinned = CertPolicy::from_settings(&settings(&[
            ("ignore-cert", "true"),
            ("cert-fingerprints", hex.as_str()),
        ]));
        assert!(pinned.check(&fp).is_ok());
        let e = pinned.check(&fingerprint(b"other")).unwrap_err();
        assert_eq!(e.status, Status::UpstreamError);
        assert!(e.message.contains("cert-fingerprints"));
    }

    #[test]
    fn error_statuses() {
        let denied = ConnectorError::new("auth", ConnectorErrorKind::AccessDenied);
        assert_eq!(connector_error(&denied).status, Status::ClientUnauthorized);
        let nego = ConnectorError::new(
            "nego",
            ConnectorErrorKind::Negotiation(
                ironrdp_pdu::nego::FailureCode::HYBRID_REQUIRED_BY_SERVER.into(),
            ),
        );
        let e = connector_error(&nego);
        assert_eq!(e.status, Status::UpstreamError);
        assert!(e.message.contains("CredSSP"), "{}", e.message);
        assert_eq!(credssp_error(&nego).status, Status::UpstreamError);
        let general = ConnectorError::new("x", ConnectorErrorKind::General);
        assert_eq!(connector_error(&general).status, Status::UpstreamError);
        assert_eq!(credssp_error(&general).status, Status::ClientUnauthorized);
        let io = std::io::Error::other("bad certificate");
        let e = tls_error(&io);
        assert_eq!(e.status, Status::UpstreamError);
        assert!(e.message.contains("bad certificate"));
    }

    /// A fake server answering the X.224 connection request with `reply`.
    async fn fake_server(reply: &'static [u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        port
    }

    #[tokio::test]
    async fn garbage_or_silence_from_the_server_is_515() {
        for reply in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"\x03\x00\x00\x05\xff",
            b"\x03\x00\xff\xff\x02\xf0\x80garbage",
            b"",
        ] {
            let port = fake_server(reply).await;
            let mut s = settings(&[]);
            s.port = port;
            s.hostname = "127.0.0.1".into();
            let r = begin(&request(&s), |_| {}).await;
            let e = r.err().expect("a garbage server must fail");
            assert_eq!(e.status, Status::UpstreamError, "{reply:?}: {}", e.message);
        }
    }

    #[tokio::test]
    async fn refused_is_519() {
        // Bind then drop a listener: the port is closed.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = connect_tcp("127.0.0.1", port, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.status, Status::UpstreamNotFound);
    }
}
